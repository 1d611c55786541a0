"""Where a pretrained backbone comes from: a local Hugging Face directory, or a hub id when
the machine is online; offline, a clear error that says how to get the files here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from c3llm.core.errors import CheckpointError, UnavailableError
from c3llm.core.hub import hub_reachable

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PretrainedConfig


def resolve_source(name: str) -> str:
    """``pretrained`` as a local directory, or as a hub id when it is not a path."""
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise CheckpointError(
                f"backbone.pretrained = {name!r} is not a Hugging Face model directory "
                "(no config.json); point it at the folder save_pretrained wrote"
            )
        return str(path)
    # Hub ids are "org/name"; anything else path-like is a missing local directory.
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_local:
        raise UnavailableError(
            f"backbone.pretrained directory not found: {name!r}. Download the model on a "
            "machine with network access and pass the local directory."
        )
    if not _in_hub_cache(name) and not hub_reachable():
        raise unavailable("pretrained", name, ConnectionError("the Hugging Face hub cannot be reached (offline)"))
    return name


def _in_hub_cache(name: str) -> bool:
    """Whether a hub id's config is already in the local Hugging Face cache (works offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # a malformed id, an unreadable cache: treat as not cached
        return False




def unavailable(model_type: str, name: str, exc: Exception) -> UnavailableError:
    """The error for a model that could not be read (offline hub id, broken download)."""
    return UnavailableError(
        f"cannot load the {model_type} backbone {name!r}: {type(exc).__name__}: {exc}. "
        "This machine cannot download it from the Hugging Face hub; download it elsewhere "
        f"(e.g. `huggingface-cli download {name} --local-dir DIR`), copy DIR here and set "
        "backbone.pretrained = DIR (an absolute local path)."
    )


def read_hf_config(model_type: str, name: str) -> PretrainedConfig:
    from transformers import AutoConfig

    source = resolve_source(name)
    try:
        return AutoConfig.from_pretrained(source)
    except OSError as exc:
        raise unavailable(model_type, name, exc) from exc


def load_pretrained_tokenizer(model_type: str, name: str, source: str, tokenizer_path: str | None) -> Tokenizer:
    """``tokenizer_path`` if given, else the model directory's (or hub repo's) tokenizer.json."""
    from c3llm.plugins.backbones.text_tokenizer import load_tokenizer

    if tokenizer_path is not None:
        return load_tokenizer(tokenizer_path)
    local = Path(source)
    if local.is_dir():
        if not (local / "tokenizer.json").is_file():
            raise CheckpointError(
                f"{local} has no tokenizer.json (a fast tokenizer). Convert it once with "
                "transformers: AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR), or set "
                "backbone.tokenizer_path"
            )
        return load_tokenizer(local / "tokenizer.json")
    try:
        from huggingface_hub import hf_hub_download

        return load_tokenizer(hf_hub_download(source, "tokenizer.json"))
    except OSError as exc:
        raise unavailable(model_type, name, exc) from exc
