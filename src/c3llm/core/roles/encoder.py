"""The encoder role: continuous condition features from audio or video."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

import attrs
import torch
from torch import nn

from c3llm.core.roles.base import Component


@attrs.frozen
class Features:
    """Encoder output.

    :ivar embeds: ``(B, N, D)`` float features, zero where ``mask`` is False.
    :ivar mask: ``(B, N)`` bool, True for real frames (items of a batch differ in length).
    """

    embeds: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def from_rows(cls, rows: Sequence[torch.Tensor], dim: int) -> Features:
        """Zero-pad per-item ``(N_i, dim)`` features into a batch with its mask."""
        longest = max(r.shape[0] for r in rows)
        embeds = torch.zeros(len(rows), longest, dim)
        mask = torch.zeros(len(rows), longest, dtype=torch.bool)
        for i, r in enumerate(rows):
            embeds[i, : r.shape[0]] = r
            mask[i, : r.shape[0]] = True
        return cls(embeds, mask)

    def __attrs_post_init__(self) -> None:
        if self.embeds.dim() != 3 or self.mask.shape != self.embeds.shape[:2]:
            raise ValueError(
                f"Features need embeds (B, N, D) and mask (B, N); got {tuple(self.embeds.shape)}"
                f" and {tuple(self.mask.shape)}"
            )


class Encoder(Component, nn.Module, abc.ABC):
    """Frozen or trainable feature extractor for one modality.

    Class attribute ``modality`` is ``"audio"`` or ``"video"``. Instances set
    ``output_dim`` (D) and ``feature_rate`` (feature frames per second, or ``None`` when the
    encoder emits a fixed number of frames per clip).

    ``frame_norm`` (default True) asks for a LayerNorm on each frame in the projector, right
    for features on an arbitrary or uneven scale. An encoder whose features are already
    globally scaled and whose per-frame level is information (silence vs an event) sets it
    False: a per-frame norm would blow background noise up to the level of the events.
    """

    modality: ClassVar[str]
    frame_norm: ClassVar[bool] = True
    output_dim: int
    feature_rate: float | None

    @abc.abstractmethod
    def forward(self, media: Sequence) -> Features:
        """Encode a batch.

        :param media: a sequence of :class:`c3llm.core.media.Audio` (audio encoders) or
            :class:`c3llm.core.media.Video` (video encoders); any rate or channel count —
            the encoder resamples and downmixes itself.
        :return: :class:`Features` with ``embeds`` ``(B, N, output_dim)``.
        """
