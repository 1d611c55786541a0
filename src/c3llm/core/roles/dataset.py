"""The dataset role: reads a manifest of local media into samples."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from c3llm.core.errors import InputError
from c3llm.core.paths import id_problem
from c3llm.core.roles.base import Component


@attrs.frozen(kw_only=True)
class Sample:
    """One clip. Paths are absolute; a modality the dataset lacks is ``None``.

    :ivar metadata: free-form ground truth (labels, onsets, attributes) for evaluation.
    :ivar id: unique in its split; a non-empty string without control characters. Outputs
        are written under :func:`c3llm.core.paths.file_stem` of it, never under the id as a path.
    """

    id: str
    split: str
    audio_path: Path | None = None
    video_path: Path | None = None
    captions: tuple[str, ...] = ()
    label: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        problem = id_problem(self.id)
        if problem:
            raise InputError(f"sample id {self.id!r} (split {self.split!r}) {problem}")


@attrs.frozen
class SkippedItem:
    """A manifest row that could not be used, and why (reported, never silently dropped)."""

    id: str
    reason: str


class Dataset(Component, abc.ABC):
    """Iterable of :class:`Sample` for the split the config names.

    Rows whose media are missing or unreadable are skipped and recorded in :attr:`skipped`
    (and logged with a count), never fatal for a run.
    """

    skipped: list[SkippedItem]

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Sample]:
        """Yield the split's usable samples in manifest order."""

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def ensure_available(self, *, progress: bool = True) -> None:
        """Make the data exist if this dataset can create it (the synthetic world writes
        itself); otherwise check nothing and return. Called by the launcher before use."""

    @property
    def root(self) -> Path:
        """Directory the manifest's relative media paths are resolved against."""
        return Path(self.config.root)
