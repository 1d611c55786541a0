"""The metric role: scores predictions against references."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

from c3llm.core.roles.base import Component


class Metric(Component, abc.ABC):
    """A metric over a whole test set.

    Class attributes: ``task`` — what it consumes: ``"audio"`` (predictions and references
    are :class:`c3llm.core.media.Audio`), ``"caption"`` (predictions ``str``, references
    sequences of ``str``) or ``"onsets"`` (sequences of onset times in seconds);
    ``higher_is_better`` per reported key where it matters.
    """

    task: ClassVar[str]

    @abc.abstractmethod
    def compute(self, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
        """Score aligned lists (``predictions[i]`` against ``references[i]``).

        :return: named scores, e.g. ``{"cider_d": 0.47}``. A metric that cannot run here
            raises :class:`~c3llm.core.errors.UnavailableError`; it never returns a stand-in.
        """
