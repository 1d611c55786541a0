"""Sequence building: the token/feature layouts of the three tasks, and batching them.

Layouts (``F`` are projected continuous features, ``|`` separates prompt from target)::

    T2A:   [bos] instr  caption                       <Audio> | a_1 … a_S </Audio>
    V2A:   [bos] instr  <Video> F_video </Video>      <Audio> | a_1 … a_S </Audio>
    VT2A:  [bos] instr  caption <Video> F </Video>    <Audio> | a_1 … a_S </Audio>
    A2T:   [bos] instr  <Audio> F_audio </Audio>              | w_1 … w_L eos
    uncond (classifier-free guidance):  [bos] <Audio> | …

The loss (paper eq. 1) covers the target span only.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from c3llm.core.config import field
from c3llm.core.errors import InputError
from c3llm.core.roles.backbone import Backbone

IGNORE = -100


@attrs.frozen(kw_only=True)
class PromptConfig:
    """Instruction text put before each task's condition (empty = none)."""

    text_to_audio: str = field("", help="instruction before the caption in T2A")
    video_to_audio: str = field("", help="instruction before the video in V2A / VT2A")
    audio_to_text: str = field("", help="instruction before the audio in A2T")


@attrs.frozen
class Segment:
    """A prompt piece: token ids ``(L,)`` or continuous ``features`` ``(N, D_enc)`` of a modality."""

    ids: torch.Tensor | None = None
    features: torch.Tensor | None = None
    modality: str | None = None

    def __len__(self) -> int:
        return len(self.ids) if self.ids is not None else self.features.shape[0]


@attrs.frozen
class Example:
    """One sequence: prompt segments and, for training, the target ids ``(L,)``."""

    task: str
    prompt: tuple[Segment, ...]
    target: torch.Tensor | None = None

    def __len__(self) -> int:
        return sum(len(s) for s in self.prompt) + (len(self.target) if self.target is not None else 0)


@attrs.frozen
class Batch:
    """Left-padded model input.

    :ivar embeds: ``(B, T, D)``; :ivar mask: ``(B, T)`` long, 0 on padding;
    :ivar labels: ``(B, T)`` target ids at target positions, ``IGNORE`` elsewhere.
    """

    embeds: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor


class SequenceBuilder:
    """Turns captions, features and codes into :class:`Example` s for one backbone."""

    def __init__(self, backbone: Backbone, prompts: PromptConfig = PromptConfig()):
        self.backbone = backbone
        self.special = backbone.special
        self._instructions = {
            task: self._ids(text) if text else []
            for task, text in (("t2a", prompts.text_to_audio), ("v2a", prompts.video_to_audio),
                               ("a2t", prompts.audio_to_text))
        }

    # -- public layouts -------------------------------------------------------------------

    def text_to_audio(self, caption: str, codes: torch.Tensor | None = None) -> Example:
        """:param codes: ``(S,)`` codebook-1 codes (training) or ``None`` (generation)."""
        prompt = [self._head("t2a", self._caption_ids(caption)), self._tok(self.special.audio_start)]
        return Example("t2a", tuple(prompt), self._audio_target(codes))

    def video_to_audio(self, video: torch.Tensor, codes: torch.Tensor | None = None,
                       caption: str | None = None) -> Example:
        """:param video: ``(N, D_video)`` features. A caption makes it the V+T task."""
        text = self._caption_ids(caption) if caption is not None else []
        prompt = [
            self._head("v2a", text),
            self._tok(self.special.video_start),
            Segment(features=video, modality="video"),
            self._tok(self.special.video_end, self.special.audio_start),
        ]
        return Example("vt2a" if caption is not None else "v2a", tuple(prompt), self._audio_target(codes))

    def audio_to_text(self, audio: torch.Tensor, caption: str | None = None) -> Example:
        """:param audio: ``(N, D_audio)`` features; ``caption`` is the training target."""
        prompt = [
            self._head("a2t", []),
            self._tok(self.special.audio_start),
            Segment(features=audio, modality="audio"),
            self._tok(self.special.audio_end),
        ]
        target = None
        if caption is not None:
            target = torch.tensor(self._caption_ids(caption) + [self.special.eos], dtype=torch.long)
        return Example("a2t", tuple(prompt), target)

    def unconditional_audio(self, codes: torch.Tensor | None = None) -> Example:
        """The condition-free prompt classifier-free guidance contrasts against."""
        prompt = [self._head(None, []), self._tok(self.special.audio_start)]
        return Example("uncond", tuple(prompt), self._audio_target(codes))

    # -- helpers --------------------------------------------------------------------------

    def _ids(self, text: str) -> list[int]:
        return self.backbone.tokenize([text])[0]

    def _caption_ids(self, caption: str) -> list[int]:
        if not isinstance(caption, str) or not caption.strip():
            raise InputError(f"caption must be non-empty text, got {caption!r}")
        return self._ids(caption)

    def _head(self, task: str | None, ids: list[int]) -> Segment:
        bos = [self.special.bos] if self.special.bos is not None else []
        instr = self._instructions.get(task, []) if task else []
        return Segment(ids=torch.tensor(bos + instr + ids, dtype=torch.long))

    @staticmethod
    def _tok(*ids: int) -> Segment:
        return Segment(ids=torch.tensor(ids, dtype=torch.long))

    def _audio_target(self, codes: torch.Tensor | None) -> torch.Tensor | None:
        if codes is None:
            return None
        codes = codes.long().flatten()
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.special.acoustic_size):
            raise InputError(
                f"codes must lie in [0, {self.special.acoustic_size}) (the acoustic vocabulary); "
                f"got range [{int(codes.min())}, {int(codes.max())}]"
            )
        return torch.cat([codes + self.special.acoustic_offset, torch.tensor([self.special.audio_end])])


def collate(examples: Sequence[Example], model, *, with_targets: bool = True) -> Batch:
    """Embed and left-pad examples. ``model`` provides ``backbone`` and ``project(modality, features)``."""
    if not examples:
        raise InputError("cannot build a batch from zero examples")
    backbone = model.backbone
    rows, labels = [], []
    for ex in examples:
        pieces, lab = [], []
        segments = list(ex.prompt)
        if with_targets and ex.target is not None:
            segments.append(Segment(ids=ex.target))
        for seg in segments:
            if seg.ids is not None:
                ids = seg.ids.to(model.device)
                pieces.append(backbone.embed(ids[None])[0])  # (L, D)
            else:
                pieces.append(model.project(seg.modality, seg.features.to(model.device)))  # (N, D)
        n_prompt = sum(len(s) for s in ex.prompt)
        lab = torch.full((sum(p.shape[0] for p in pieces),), IGNORE, dtype=torch.long)
        if with_targets and ex.target is not None:
            lab[n_prompt:] = ex.target
        rows.append(torch.cat(pieces))
        labels.append(lab)
    width = max(r.shape[0] for r in rows)
    dim = rows[0].shape[1]
    embeds = rows[0].new_zeros(len(rows), width, dim)
    mask = torch.zeros(len(rows), width, dtype=torch.long, device=embeds.device)
    out_labels = torch.full((len(rows), width), IGNORE, dtype=torch.long, device=embeds.device)
    for i, (r, lab) in enumerate(zip(rows, labels)):
        n = r.shape[0]
        embeds[i, width - n:] = r
        mask[i, width - n:] = 1
        out_labels[i, width - n:] = lab.to(embeds.device)
    return Batch(embeds, mask, out_labels)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids ``(B, T)`` for a left-padded ``(B, T)`` mask (0 on padding)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)
