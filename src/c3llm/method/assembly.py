"""Building a :class:`~c3llm.method.model.C3LLM` from component specs, and saving/loading it.

Order matters: the codec first (its cardinality sizes the acoustic vocabulary), then the
encoders, the backbone (vocabulary added right after its weights load) and the refiner
(whose codebooks, cardinality and condition width are bound to the others).
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

import c3llm
from c3llm.core.checkpoint import (
    atomic_directory,
    load_tensors,
    read_header,
    read_json,
    save_tensors,
    write_json,
)
from c3llm.core.config import from_mapping, to_mapping
from c3llm.core.errors import (
    CheckpointError,
    ConfigError,
    UnavailableError,
    UnknownComponentError,
)
from c3llm.core.registry import Registry
from c3llm.core.roles.base import load_strict
from c3llm.method.model import C3LLM, MODALITIES
from c3llm.method.pipeline_config import COMPONENT_SECTIONS
from c3llm.method.sequence import PromptConfig

log = logging.getLogger(__name__)

FORMAT = "c3llm-pipeline"
FORMAT_VERSION = 1
BUILD_ORDER = ("decoder", "audio_encoder", "video_encoder", "backbone", "refiner")


def build_components(
    registry: Registry,
    specs: Mapping[str, Any],
    *,
    base_dirs: Mapping[str, Path | None] | None = None,
    load_weights: bool = True,
) -> dict[str, Any]:
    """Build (and by default load pretrained weights of) each component section."""
    unknown = set(specs) - set(COMPONENT_SECTIONS)
    if unknown:
        raise UnknownComponentError(f"unknown component slot(s) {sorted(unknown)}; slots: {', '.join(BUILD_ORDER)}")
    built: dict[str, Any] = {}

    def lookup(key: str) -> Any:
        role, attr = key.split(".", 1)
        component = built.get(role)
        return getattr(component, attr) if component is not None else attrs.NOTHING

    for section in BUILD_ORDER:
        spec = specs.get(section)
        if spec is None:
            continue
        base_dir = (base_dirs or {}).get(section)
        component = registry.build(COMPONENT_SECTIONS[section], spec, where=section, base_dir=base_dir, lookup=lookup)
        if load_weights:
            component.load_pretrained()
        if section == "backbone":
            component.add_acoustic_vocabulary(built["decoder"].cardinality)
        built[section] = component
    return built


def assemble(components: Mapping[str, Any], *, prompts: PromptConfig = PromptConfig(),
             projector_hidden: int | None = None, projector_frame_norm: Mapping[str, bool] | None = None) -> C3LLM:
    encoders = {slot.split("_")[0]: components[slot] for slot in ("audio_encoder", "video_encoder") if slot in components}
    return C3LLM(
        decoder=components["decoder"], backbone=components["backbone"], refiner=components.get("refiner"),
        encoders=encoders, prompts=prompts, projector_hidden=projector_hidden,
        projector_frame_norm=projector_frame_norm,
    )


def component_sections(model: C3LLM) -> dict[str, Any]:
    sections = {"decoder": model.decoder, "backbone": model.backbone}
    if model.refiner is not None:
        sections["refiner"] = model.refiner
    for modality, encoder in model.encoders.items():
        sections[f"{modality}_encoder"] = encoder
    return sections


def save_model(model: C3LLM, directory: Path, *, extra: Mapping[str, Any] | None = None) -> Path:
    """Write a self-describing checkpoint directory (atomically replaces ``directory``)."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        record: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "c3llm_version": c3llm.__version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "prompts": to_mapping(model.prompts),
            "projector_hidden": _projector_hidden(model),
            "projector_frame_norm": {modality: proj.frame_norm for modality, proj in model.projectors.items()},
            "components": {},
        }
        for section, component in component_sections(model).items():
            folder = tmp / section
            folder.mkdir()
            overrides = component.export_assets(folder) or {}
            config = attrs.evolve(component.config, **overrides) if overrides else component.config
            spec = getattr(component, "registry_spec", None)
            mapping, locations = _located(to_mapping(config), folder, directory)
            record["components"][section] = {
                "name": spec.name if spec else None,
                "plugin": spec.plugin if spec else None,
                "distribution": spec.distribution if spec else None,
                "version": spec.version if spec else None,
                "config": mapping,
                "locations": locations,
            }
            save_tensors(folder / "weights.safetensors", component.checkpoint_state_dict())
        save_tensors(tmp / "projectors.safetensors", model.projectors.state_dict())
        record.update(extra or {})
        write_json(tmp / "pipeline.json", record)
    log.info("saved pipeline to %s", directory)
    return directory


def _projector_hidden(model: C3LLM) -> int | None:
    for proj in model.projectors.values():
        return proj.net[1].out_features
    return None


def resolve_checkpoint_dir(directory: Path) -> Path:
    """Accept a checkpoint directory or a run directory holding ``pipeline/``."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    if (directory / "pipeline.json").is_file():
        return directory
    if (directory / "pipeline" / "pipeline.json").is_file():
        return directory / "pipeline"
    raise CheckpointError(f"{directory} holds no pipeline.json (nor pipeline/pipeline.json): not a c3llm checkpoint")


def load_model(registry: Registry, directory: Path,
               paths: Mapping[str, str | Path] | None = None) -> tuple[C3LLM, dict[str, Any]]:
    """Rebuild a model saved by :func:`save_model`; refuse missing plugins and mismatches.

    :param paths: new locations of files the frozen components were loaded from, by dotted
        key (``{"backbone.pretrained": "/new/gemma-2b"}``), for models moved since the save.
    """
    directory = resolve_checkpoint_dir(directory)
    record = read_json(directory / "pipeline.json")
    _check_record(record, directory / "pipeline.json")
    _relocate(record["components"], directory, paths or {})
    specs, base_dirs = {}, {}
    for section, entry in record["components"].items():
        role = COMPONENT_SECTIONS.get(section)
        if role is None:
            raise CheckpointError(f"{directory}: unknown component slot {section!r}")
        try:
            spec = registry.get(role, entry["name"])
        except UnknownComponentError as exc:
            raise CheckpointError(
                f"checkpoint needs {role} {entry['name']!r} from plugin {entry.get('plugin')!r} "
                f"({entry.get('distribution')} {entry.get('version')}), which is not installed here. "
                f"Install that plugin distribution, then load again."
            ) from exc
        if entry.get("version") and spec.version and entry["version"] != spec.version:
            log.warning("%s %r was saved with %s %s; installed is %s", role, entry["name"],
                        entry.get("distribution"), entry["version"], spec.version)
        _check_paths(spec.config_cls, entry["config"], directory / section, where=f"{section} in {directory}")
        specs[section] = {"name": entry["name"], **entry["config"]}
        base_dirs[section] = directory / section
    components = build_components(registry, specs, base_dirs=base_dirs)
    prompts = from_mapping(PromptConfig, record.get("prompts", {}), where="prompts")
    # checkpoints from before the option had a LayerNorm in every projector
    frame_norm = record.get("projector_frame_norm", {modality: True for modality in MODALITIES})
    if not isinstance(frame_norm, dict) or not all(isinstance(v, bool) for v in frame_norm.values()):
        raise CheckpointError(f"{directory}/pipeline.json: projector_frame_norm must map modality -> true/false, "
                              f"got {frame_norm!r}")
    model = assemble(components, prompts=prompts, projector_hidden=record.get("projector_hidden"),
                     projector_frame_norm=frame_norm)
    for section, component in components.items():
        path = directory / section / "weights.safetensors"
        try:  # names and shapes are checked against the header before any tensor is read
            expected = component.checkpoint_state_dict()
            if not expected and isinstance(component, torch.nn.Module) and read_header(path):
                expected = component.state_dict()  # saved in full, by a c3llm before Component.mark_loaded
            component.load_checkpoint_state_dict(load_tensors(path, expected=expected))
        except CheckpointError as exc:
            raise CheckpointError(f"{section}: {exc}") from exc
    load_strict(model.projectors, load_tensors(directory / "projectors.safetensors",
                                               expected=model.projectors.state_dict()), owner="projectors")
    return model, record


def _check_record(record: Any, path: Path) -> None:
    """A ``pipeline.json`` of the known format, with the keys :func:`load_model` reads."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file")
    version = record.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise CheckpointError(f"{path.parent} was written by a newer c3llm (format {version}); upgrade c3llm")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unknown format_version {version!r} (this c3llm reads {FORMAT_VERSION})")
    components = record.get("components")
    if not isinstance(components, dict) or "decoder" not in components or "backbone" not in components:
        raise CheckpointError(f"{path}: 'components' must be a table with at least decoder and backbone")
    for section, entry in components.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                or not isinstance(entry.get("config"), dict):
            raise CheckpointError(f"{path}: components.{section} needs a 'name' string and a 'config' table")
    for key, kind in (("prompts", dict), ("projector_hidden", (int, type(None)))):
        if key in record and not isinstance(record[key], kind):
            raise CheckpointError(f"{path}: {key!r} has the wrong type ({type(record[key]).__name__})")


def _check_paths(config_cls: type, config: Mapping[str, Any], folder: Path, *, where: str) -> None:
    """Relative paths in a saved component config (assets ``export_assets`` wrote, such as
    ``tokenizer_path``) must stay inside the component's folder; ``tokenizer_path`` must be one."""
    import os

    for f in attrs.fields(config_cls):
        value = config.get(f.name)
        if not f.metadata.get("path") or not isinstance(value, str):
            continue
        relative = not Path(value).expanduser().is_absolute()
        inside = relative and os.path.normpath(folder / value).startswith(os.path.normpath(folder) + os.sep)
        if (relative and not inside) or (f.name == "tokenizer_path" and not inside):
            raise CheckpointError(f"{where}: {f.name} = {value!r} points outside the checkpoint folder; "
                                  "a saved checkpoint's assets must lie inside it")


# -- where the frozen components' files are ------------------------------------------------


def _located(config: dict[str, Any], folder: Path, directory: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """``config`` with each existing file or folder it names made absolute, and those paths
    relative to the checkpoint ``directory`` (``{"pretrained": "../../models/gemma-2b"}``).

    The frozen components (Gemma, EnCodec, CLAP, ResNet) are recorded by the path they were
    loaded from, not copied. The absolute path is what loading tries first; the relative one
    is the fallback for a run folder moved together with its models (see :func:`_relocate`).
    Assets written into the component's own ``folder`` (a tokenizer) stay as they are.
    """
    config, locations = dict(config), {}
    for key, value in config.items():
        if not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if not path.is_absolute() and ("/" not in value and not path.suffix or (folder / value).exists()):
            continue  # a name ("tiny", "prepend") or an asset inside the checkpoint
        if not path.exists():  # a hub id, or a file already gone
            continue
        # absolute (relative to the working directory otherwise, which changes), links kept as
        # links: a stable link such as pretrain's {root}/<kind> stays what the config named
        path = Path(os.path.abspath(path))
        config[key] = str(path)
        locations[key] = os.path.relpath(path, os.path.abspath(directory))
    return config, locations


def _relocate(components: dict[str, Any], directory: Path, paths: Mapping[str, str | Path]) -> None:
    """Point the recorded component files at where they are now: ``paths`` first (given by
    the caller), else the recorded absolute path, else the recorded path relative to the
    checkpoint (a run folder moved with its models). A file that is in none of those places
    is an :class:`UnavailableError` naming the key to pass."""
    for dotted, value in paths.items():
        section, _, key = str(dotted).partition(".")
        entry = components.get(section)
        if entry is None or key not in entry["config"]:
            known = sorted(f"{s}.{k}" for s, e in components.items() for k in e.get("locations") or {})
            raise ConfigError(f"paths: {dotted!r} is not a key of this checkpoint's components; the recorded "
                              f"model files are {', '.join(known) or 'none'}")
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"paths: {dotted} must be a path, got {type(value).__name__}")
        path = Path(value).expanduser()
        entry["config"][key] = os.path.abspath(path) if path.exists() else str(value)  # a hub id stays one
    for section, entry in components.items():
        locations = entry.get("locations") or {}
        if not isinstance(locations, dict):
            raise CheckpointError(f"{directory}/pipeline.json: components.{section}.locations must be a table")
        for key, relative in locations.items():
            value = entry["config"].get(key)
            if f"{section}.{key}" in paths or not isinstance(value, str) or Path(value).exists():
                continue
            moved = Path(os.path.normpath(Path(os.path.abspath(directory)) / str(relative)))
            if moved.exists():
                log.info("%s.%s: %s is gone; using %s (relative to the checkpoint)", section, key, value, moved)
                entry["config"][key] = str(moved)
                continue
            raise UnavailableError(
                f"{section}.{key}: the checkpoint in {directory} was loaded from {value}, which does not exist, "
                f"nor does {moved} (the same place relative to the checkpoint). Pass the new location: "
                f"Pipeline.from_pretrained(..., paths={{'{section}.{key}': NEW_PATH}}) or "
                f"c3llm-run generate --checkpoint DIR --set {section}.{key}=NEW_PATH"
            )
