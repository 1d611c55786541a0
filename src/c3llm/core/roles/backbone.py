"""The backbone role: the LLM (a causal, next-token transformer) extended with the acoustic vocabulary."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import nn

from c3llm.core.roles.base import Component


@attrs.frozen(kw_only=True)
class SpecialTokens:
    """Ids the core builds sequences with.

    The acoustic tokens ``<a_0> … <a_{K-1}>`` occupy the contiguous id range
    ``[acoustic_offset, acoustic_offset + acoustic_size)``; acoustic code ``c`` is token
    ``acoustic_offset + c``.
    """

    bos: int | None
    eos: int
    pad: int
    audio_start: int
    audio_end: int
    video_start: int
    video_end: int
    acoustic_offset: int
    acoustic_size: int

    def acoustic_ids(self) -> range:
        return range(self.acoustic_offset, self.acoustic_offset + self.acoustic_size)

    def control_ids(self) -> frozenset[int]:
        """Every id user text must never produce: acoustic tokens, modality markers, bos,
        eos and pad."""
        ids = set(self.acoustic_ids()) | {self.audio_start, self.audio_end, self.video_start, self.video_end}
        return frozenset(ids | {i for i in (self.bos, self.eos, self.pad) if i is not None})


@attrs.frozen
class BackboneOutput:
    """:ivar hidden: ``(B, T, D)`` last hidden states. :ivar past: KV cache or ``None``."""

    hidden: torch.Tensor
    past: Any = None


class Backbone(Component, nn.Module, abc.ABC):
    """Tokenizer + causal LM. Instances set ``hidden_size`` (D).

    The pipeline calls :meth:`add_acoustic_vocabulary` exactly once after
    ``load_pretrained``; from then on :attr:`special` is valid and only the parameters the
    config marks as trainable (e.g. LoRA weights and the *new* token rows) require grad.
    """

    hidden_size: int

    @property
    @abc.abstractmethod
    def special(self) -> SpecialTokens:
        """Special and acoustic token ids (valid after :meth:`add_acoustic_vocabulary`)."""

    @abc.abstractmethod
    def add_acoustic_vocabulary(self, acoustic_size: int) -> None:
        """Add ``<a_0> … <a_{acoustic_size-1}>`` and the modality markers
        ``<Audio> </Audio> <Video> </Video>`` to tokenizer and embeddings, then set up the
        trainable parameters (e.g. wrap in LoRA)."""

    @abc.abstractmethod
    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Text to ids, without bos/eos, read as plain text: no id in
        ``special.control_ids()`` may come out, whatever the text spells (``"<Audio>"``,
        ``"<eos>"``, ``"<a_3>"`` are characters, not tokens). Raises ``InputError`` for empty
        text or text that is not valid Unicode."""

    @abc.abstractmethod
    def detokenize(self, ids: Sequence[int]) -> str:
        """Ids to text, skipping special and acoustic tokens."""

    @abc.abstractmethod
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids -> ``(B, T, D)`` input embeddings, scaled exactly as the model
        scales its own token embeddings, so ``forward(embed(ids))`` equals a forward on ids.
        Projected continuous features are spliced in beside these rows unscaled."""

    @abc.abstractmethod
    def forward(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        position_ids: torch.Tensor | None = None,
        past: Any = None,
        use_cache: bool = False,
    ) -> BackboneOutput:
        """Run the transformer.

        :param embeds: ``(B, T, D)`` input embeddings (new positions only when ``past`` is given).
        :param attention_mask: ``(B, T_past + T)`` 1 for real tokens, 0 for (left) padding.
        :param position_ids: ``(B, T)`` positions; derived from the mask when ``None``.
        :return: :class:`BackboneOutput` with ``hidden`` ``(B, T, D)``.
        """

    @abc.abstractmethod
    def logits(self, hidden: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, T, V)`` logits, or only the vocabulary ``rows`` asked for
        (``(B, T, len(rows))``; the sliced head of fast audio decoding)."""

    def new_cache(self, batch_size: int, max_length: int) -> Any:
        """An empty KV cache preallocated for ``batch_size`` rows of up to ``max_length``
        positions (prompt + generated), to pass as ``forward(past=...)``: decoding then
        writes each step in place instead of growing the cache. ``None`` (the default): the
        backbone has none, and ``forward`` grows its own cache."""
        return None

    def prepare_for_inference(self) -> None:
        """Make generation fast (e.g. merge LoRA into the base weights). Irreversible for
        training; called by the pipeline before generating unless told otherwise."""
