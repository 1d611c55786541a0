"""The C3LLM model: codec + condition encoders + projectors + LLM backbone + refiner.

This module only composes the roles and checks that they fit; the method's steps live in
:mod:`c3llm.method.sequence` (layouts), :mod:`c3llm.method.losses` (eq. 1 and 2) and
:mod:`c3llm.method.generation` (decoding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from c3llm.core.errors import IncompatibleComponentsError, InputError
from c3llm.core.roles import Backbone, Decoder, Encoder, Refiner
from c3llm.method.projector import Projector
from c3llm.method.sequence import PromptConfig, SequenceBuilder

MODALITIES = ("audio", "video")


class C3LLM(nn.Module):
    """All components of one pipeline.

    :param encoders: modality (``"audio"``/``"video"``) -> encoder; either may be absent
        (then that task is unavailable).
    :param projector_hidden: hidden width of the MLP projectors (default: backbone width).
    :param projector_frame_norm: modality -> whether its projector LayerNorms each frame
        (default: what the encoder asks for, :attr:`Encoder.frame_norm`).
    """

    def __init__(
        self,
        *,
        decoder: Decoder,
        backbone: Backbone,
        refiner: Refiner | None = None,
        encoders: Mapping[str, Encoder] | None = None,
        prompts: PromptConfig = PromptConfig(),
        projector_hidden: int | None = None,
        projector_frame_norm: Mapping[str, bool] | None = None,
    ):
        super().__init__()
        encoders = dict(encoders or {})
        check_compatible(decoder=decoder, backbone=backbone, refiner=refiner, encoders=encoders)
        self.decoder = decoder
        self.backbone = backbone
        self.refiner = refiner
        self.encoders = nn.ModuleDict(encoders)
        frame_norm = {modality: enc.frame_norm for modality, enc in encoders.items()}
        frame_norm.update(projector_frame_norm or {})
        self.projectors = nn.ModuleDict({
            modality: Projector(enc.output_dim, backbone.hidden_size, projector_hidden,
                                frame_norm=frame_norm[modality])
            for modality, enc in encoders.items()
        })
        self.prompts = prompts
        self.sequences = SequenceBuilder(backbone, prompts)

    @property
    def device(self) -> torch.device:
        return next(self.projectors.parameters(), next(self.backbone.parameters())).device

    def project(self, modality: str, features: torch.Tensor) -> torch.Tensor:
        """``(N, D_enc)`` encoder features -> ``(N, D)`` backbone embeddings."""
        if modality not in self.projectors:
            raise InputError(f"this pipeline has no {modality} encoder; build it with {modality}_encoder=...")
        proj = self.projectors[modality]
        if features.shape[-1] != proj.in_dim:
            raise InputError(
                f"{modality} features have width {features.shape[-1]} but the {modality} projector "
                f"expects {proj.in_dim} (the encoder's output_dim); were they made by another encoder config?"
            )
        # One dtype rule on every device and precision: the projector computes in its own
        # dtype, and what enters the backbone takes its token embeddings' dtype.
        return proj(features.to(self.device)).to(self.embed_dtype)

    @property
    def embed_dtype(self) -> torch.dtype:
        """The dtype of the backbone's token embeddings (bf16 for a bf16 backbone), which
        projected features take on before they are spliced in."""
        with torch.no_grad():
            return self.backbone.embed(torch.zeros(1, 1, dtype=torch.long, device=self.device)).dtype

    def encode_media(self, modality: str, media: Sequence) -> list[torch.Tensor]:
        """Run the modality's encoder; returns each item's real frames ``(N_i, D_enc)``."""
        if modality not in self.encoders:
            raise InputError(f"this pipeline has no {modality} encoder; build it with {modality}_encoder=...")
        with torch.no_grad():
            feats = self.encoders[modality](list(media))
        return [feats.embeds[i][feats.mask[i]] for i in range(feats.embeds.shape[0])]

    def condition(
        self, captions: Sequence[str | None], video: Sequence[torch.Tensor | None]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Refiner condition: caption embeddings and/or projected video, right-padded.

        :return: ``cond`` ``(B, N, D)`` and ``mask`` ``(B, N)`` bool.
        """
        rows = []
        for caption, feats in zip(captions, video):
            parts = []
            if caption is not None:
                ids = torch.tensor(self.backbone.tokenize([caption])[0], dtype=torch.long, device=self.device)
                parts.append(self.backbone.embed(ids[None])[0])
            if feats is not None:
                parts.append(self.project("video", feats))
            if not parts:
                raise InputError("the refiner needs a caption or video features as condition")
            rows.append(torch.cat(parts))
        width = max(r.shape[0] for r in rows)
        cond = rows[0].new_zeros(len(rows), width, rows[0].shape[1])
        mask = torch.zeros(len(rows), width, dtype=torch.bool, device=cond.device)
        for i, r in enumerate(rows):
            cond[i, : r.shape[0]] = r
            mask[i, : r.shape[0]] = True
        return cond, mask


def check_compatible(*, decoder: Decoder, backbone: Backbone, refiner: Refiner | None,
                     encoders: Mapping[str, Encoder]) -> None:
    """Refuse pipelines whose parts do not fit, naming both sides of each mismatch."""
    special = backbone.special
    if special.acoustic_size != decoder.cardinality:
        raise IncompatibleComponentsError(
            f"backbone acoustic vocabulary has {special.acoustic_size} tokens but the decoder "
            f"(codec) codebook has cardinality {decoder.cardinality}"
        )
    if refiner is not None:
        if refiner.cardinality != decoder.cardinality:
            raise IncompatibleComponentsError(
                f"refiner cardinality {refiner.cardinality} != decoder cardinality {decoder.cardinality}"
            )
        if refiner.num_codebooks > decoder.num_codebooks:
            raise IncompatibleComponentsError(
                f"refiner predicts {refiner.num_codebooks} codebooks but the decoder (codec) has only "
                f"{decoder.num_codebooks}"
            )
        if refiner.cond_dim != backbone.hidden_size:
            raise IncompatibleComponentsError(
                f"refiner cond_dim {refiner.cond_dim} != backbone hidden_size {backbone.hidden_size}"
            )
    for slot, enc in encoders.items():
        if slot not in MODALITIES:
            raise IncompatibleComponentsError(f"unknown encoder slot {slot!r}; use one of {MODALITIES}")
        if enc.modality != slot:
            raise IncompatibleComponentsError(
                f"the {slot} encoder slot holds {type(enc).__name__}, whose modality is {enc.modality!r}"
            )
        if not isinstance(enc.output_dim, int) or enc.output_dim <= 0:
            raise IncompatibleComponentsError(f"{slot} encoder output_dim must be a positive int, got {enc.output_dim!r}")
