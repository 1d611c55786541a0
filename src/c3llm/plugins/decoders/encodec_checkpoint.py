"""Reading EnCodec weights: HF-format directories, the official ``encodec`` ``.th`` files, hub ids.

The official checkpoints (``encodec_24khz-d7cc33bc.th``) hold the ``state_dict`` of
``encodec.EncodecModel``: SEANet ``nn.Sequential`` stacks under ``encoder.model.N`` /
``decoder.model.N``, each conv wrapped twice (``SConv1d.conv`` -> ``NormConv1d.conv``) and
weight-normalised the old way (``weight_g`` / ``weight_v``), and the quantizer under
``quantizer.vq.layers.K._codebook``. transformers' ``EncodecModel`` has the same modules in the
same order, so the layer indices agree and only the wrapper names differ::

    encoder.model.1.block.1.conv.conv.weight_g  -> encoder.layers.1.block.1.conv.parametrizations.weight.original0
    decoder.model.3.convtr.convtr.weight_v      -> decoder.layers.3.conv.parametrizations.weight.original1
    encoder.model.0.conv.norm.weight            -> encoder.layers.0.norm.weight   (time_group_norm models)
    encoder.model.13.lstm.weight_ih_l0          -> encoder.layers.13.lstm.weight_ih_l0
    quantizer.vq.layers.0._codebook.embed       -> quantizer.layers.0.codebook.embed
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from c3llm.core.errors import CheckpointError, UnavailableError
from c3llm.core.hub import hub_reachable

log = logging.getLogger(__name__)

#: Suffixes of the official ``encodec`` package checkpoints (torch pickles of a state_dict).
OFFICIAL_SUFFIXES = (".th", ".pt", ".pth")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# (pattern, replacement) applied in order to every official key.
_OFFICIAL_TO_HF: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(encoder|decoder)\.model\."), r"\1.layers."),
    (re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\."), r"quantizer.layers.\1.codebook."),
    (re.compile(r"\.conv\.conv\."), ".conv."),
    (re.compile(r"\.convtr\.convtr\."), ".conv."),
    (re.compile(r"\.(conv|convtr)\.norm\."), ".norm."),
    (re.compile(r"\.weight_g$"), ".parametrizations.weight.original0"),
    (re.compile(r"\.weight_v$"), ".parametrizations.weight.original1"),
)


def official_key_to_hf(key: str) -> str:
    """Rename one key of an official ``encodec`` state_dict to transformers' ``EncodecModel``."""
    for pattern, replacement in _OFFICIAL_TO_HF:
        key = pattern.sub(replacement, key)
    return key


def official_state_dict_to_hf(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Rename every key of an official state_dict; refuse non-tensors and name clashes."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"official EnCodec checkpoint entry {key!r} is a {type(value).__name__}, not a tensor; "
                f"expected the plain state_dict saved by the `encodec` package"
            )
        new = official_key_to_hf(key)
        if new in out:
            raise CheckpointError(f"official EnCodec checkpoint maps two keys to {new!r}")
        out[new] = value
    return out


def read_official_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Load an official ``.th`` file safely (``weights_only``) and rename its keys."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-tensor payloads
        raise CheckpointError(
            f"cannot read {path} as an EnCodec checkpoint ({type(exc).__name__}: {exc}). Expected the "
            f"`.th` state_dict of the official `encodec` package, e.g. encodec_24khz-d7cc33bc.th"
        ) from exc
    if isinstance(state, Mapping) and "best_state" in state and isinstance(state["best_state"], Mapping):
        state = state["best_state"]  # training snapshots of the encodec/audiocraft solvers
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state_dict")
    return official_state_dict_to_hf(state)


def looks_like_hub_id(text: str) -> bool:
    """``owner/name`` with no local meaning (not an existing path, not absolute, no ``..``)."""
    return bool(_HUB_ID.match(text)) and not text.startswith(("./", "../")) and not Path(text).exists()




def load_hf_model(source: str, *, hub: bool) -> Any:
    """``EncodecModel.from_pretrained`` for a local directory or (``hub=True``) a hub id."""
    from transformers import EncodecModel

    if not hub:
        try:
            return EncodecModel.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"cannot load the HF-format EnCodec directory {source}: {exc}. It must hold "
                f"config.json and model.safetensors, as written by EncodecModel.save_pretrained"
            ) from exc
    try:  # a copy already in the local hub cache works offline
        return EncodecModel.from_pretrained(source, local_files_only=True)
    except OSError:
        pass
    if not hub_reachable():
        raise UnavailableError(
            f"EnCodec weights {source!r} are not in the local Hugging Face cache and the hub cannot "
            f"be reached (offline). Download them on a connected machine "
            f"(`huggingface-cli download {source} --local-dir DIR`) and set pretrained = \"DIR\", or "
            f"point pretrained at the official .th file (e.g. encodec_24khz-d7cc33bc.th)."
        )
    try:
        return EncodecModel.from_pretrained(source)
    except OSError as exc:
        raise UnavailableError(f"cannot fetch EnCodec weights {source!r} from the hub: {exc}") from exc
