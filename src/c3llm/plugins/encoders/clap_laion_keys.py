"""Read an original LAION-CLAP checkpoint (``.pt``) into transformers' CLAP audio key layout.

LAION-CLAP (github.com/LAION-AI/CLAP) saves the whole contrastive model, usually as
``{"epoch": ..., "state_dict": {"module.audio_branch....": tensor}}`` from a DDP run. Only the
audio tower (HTSAT) and its projection are kept here; the text tower, the logit scales, the
spectrogram front end (transformers' ``ClapFeatureExtractor`` computes the mel spectrogram
instead) and HTSAT's AudioSet classification head are dropped.

The renaming (LAION -> transformers ``ClapAudioModelWithProjection``):

===================================  ================================================
``audio_branch.``                    ``audio_model.audio_encoder.``
``bn0``                              ``batch_norm``
``blocks.J.norm1`` / ``norm2``       ``blocks.J.layernorm_before`` / ``layernorm_after``
``blocks.J.attn.qkv`` (fused)        ``attention.self.query`` / ``key`` / ``value`` (thirds)
``blocks.J.attn.proj``               ``attention.output.dense``
``blocks.J.attn.*`` (bias table)     ``attention.self.*``
``blocks.J.mlp.fc1`` / ``fc2``       ``intermediate.dense`` / ``output.dense``
``audio_projection.0`` / ``.2``      ``audio_projection.linear1`` / ``linear2``
===================================  ================================================

Everything else in the audio branch (patch embedding, fusion block, patch merging, final
norm) already has the same name in both.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from c3llm.core.errors import CheckpointError

log = logging.getLogger(__name__)

#: LAION audio-branch parts with no counterpart in transformers' audio tower.
_DROPPED_AUDIO_PARTS = (
    "spectrogram_extractor.",  # torchlibrosa STFT as conv weights (the extractor does this)
    "logmel_extractor.",  # mel filter bank (the extractor does this)
    "tscam_conv.",  # AudioSet token-semantic classification head
    "head.",
)
_BLOCK = re.compile(r"^(layers\.\d+\.blocks\.\d+\.)(.+)$")
_BLOCK_RENAMES = {
    "norm1.": "layernorm_before.",
    "norm2.": "layernorm_after.",
    "attn.proj.": "attention.output.dense.",
    "attn.": "attention.self.",
    "mlp.fc1.": "intermediate.dense.",
    "mlp.fc2.": "output.dense.",
}
_PROJECTION = {"0.": "linear1.", "2.": "linear2."}


def read_laion_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a LAION-CLAP ``.pt`` safely (``weights_only=True``) and unwrap it.

    Handles a bare state dict, a ``{"state_dict": ...}`` training checkpoint and the DDP
    ``module.`` prefix.
    """
    path = Path(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle with code objects, truncated file, not a torch file
        raise CheckpointError(
            f"cannot read LAION-CLAP checkpoint {path}: {type(exc).__name__}: {exc}. It is read "
            f"with torch.load(weights_only=True); re-save it as a plain state dict if it holds objects."
        ) from exc
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} is not a LAION-CLAP state dict (expected a mapping of tensors)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def laion_to_transformers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename LAION-CLAP audio keys to ``ClapAudioModelWithProjection`` keys (see module doc)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("audio_branch."):
            rest = key[len("audio_branch."):]
            if rest.startswith(_DROPPED_AUDIO_PARTS) or rest.endswith(".attn_mask"):
                continue  # attn_mask is a buffer recomputed from the window geometry
            if rest.startswith("bn0."):
                rest = "batch_norm." + rest[len("bn0."):]
            match = _BLOCK.match(rest)
            if match:
                prefix, tail = match.groups()
                if tail.startswith("attn.qkv."):
                    suffix = tail[len("attn.qkv."):]  # weight (3D, D) or bias (3D,)
                    query, key_, value_ = value.chunk(3, dim=0)
                    base = "audio_model.audio_encoder." + prefix + "attention.self."
                    out[base + "query." + suffix] = query.clone()
                    out[base + "key." + suffix] = key_.clone()
                    out[base + "value." + suffix] = value_.clone()
                    continue
                for old, new in _BLOCK_RENAMES.items():
                    if tail.startswith(old):
                        tail = new + tail[len(old):]
                        break
                rest = prefix + tail
            out["audio_model.audio_encoder." + rest] = value
        elif key.startswith("audio_projection."):
            rest = key[len("audio_projection."):]
            for old, new in _PROJECTION.items():
                if rest.startswith(old):
                    out["audio_projection." + new + rest[len(old):]] = value
                    break
            else:
                raise CheckpointError(f"unexpected LAION audio projection key {key!r}")
    if not out:
        raise CheckpointError(
            "no audio_branch.* / audio_projection.* keys found: this is not a LAION-CLAP checkpoint "
            f"(first keys: {list(state)[:3]})"
        )
    return out
