"""The part of a config file that describes a pipeline: its components, prompts and
generation defaults.

::

    [decoder]        name = "encodec"  + that plugin's config keys   (the audio codec)
    [backbone]       name = "gemma"    + ...                         (the LLM)
    [refiner]        name = "nar"      (optional)
    [audio_encoder]  name = "clap"     (optional: enables audio -> text)
    [video_encoder]  name = "rgb-flow" (optional: enables video -> audio)
    [prompts]        instruction texts
    [generate]       sampling and caption decoding defaults
    [run]            device, projector_hidden (the launcher adds its own keys)

The SDK's ``Pipeline.from_config`` reads this part; the launcher
(:mod:`c3llm.app.run_config`) reads it through :func:`parse_components` and adds the
sections of a run (data, training, evaluation).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from c3llm.core.config import field, from_mapping, in_range
from c3llm.core.errors import ConfigError
from c3llm.method.generation import MAX_SECONDS, SamplingConfig, TextDecodingConfig

#: component section -> role
COMPONENT_SECTIONS: dict[str, str] = {
    "decoder": "decoder",
    "audio_encoder": "encoder",
    "video_encoder": "encoder",
    "backbone": "backbone",
    "refiner": "refiner",
}
REQUIRED_COMPONENTS = ("decoder", "backbone")


@attrs.frozen(kw_only=True)
class GenerateSection:
    """Defaults for generation (SDK calls can override each)."""

    sampling: SamplingConfig = field(factory=SamplingConfig)
    text: TextDecodingConfig = field(factory=TextDecodingConfig)
    duration: float | None = field(None, validator=in_range(0.0, MAX_SECONDS, low_open=True),
                                   help=f"seconds of T2A audio (at most {MAX_SECONDS:g})")
    window_seconds: float = field(
        10.0, validator=in_range(0.0, low_open=True),
        help="longest audio the LLM makes in one pass (its training length); longer audio is made window by "
             "window, each continuing from the previous one's last context_seconds")
    context_seconds: float = field(
        2.0, validator=in_range(0.0, low_open=True),
        help="audio carried from one window into the next (windowed continuation); less than window_seconds")
    video_context_seconds: float | None = field(
        None, validator=in_range(0.0, low_open=True),
        help="the same for video -> audio, where the video carries the timing (unset: context_seconds)")


def expand_placeholders(data: Mapping[str, Any]) -> dict[str, Any]:
    """Replace ``{out_dir}`` and ``{run_dir}`` in every string value by the run's folders
    (so shipped configs can put data beside the run, wherever it is)."""
    run = data.get("run", {}) if isinstance(data.get("run", {}), Mapping) else {}
    out_dir = Path(str(run.get("out_dir", "runs"))).expanduser().absolute()
    run_dir = out_dir / str(run.get("name", "run"))

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{out_dir}", str(out_dir)).replace("{run_dir}", str(run_dir))
        if isinstance(value, Mapping):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(dict(data))


def parse_components(data: Mapping[str, Any], *, base_dir: Path | None = None,
                     registry=None) -> dict[str, dict[str, Any]]:
    """The component sections of ``data`` as ``section -> {"name": ..., **params}``, each
    checked against its plugin's config class when ``registry`` is given."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a table, got {type(data).__name__}")
    for section in REQUIRED_COMPONENTS:
        if section not in data:
            raise ConfigError(f"missing section [{section}] (needs at least name = \"...\")")
    components = {}
    for section, role in COMPONENT_SECTIONS.items():
        if section not in data:
            continue
        spec = data[section]
        spec = {"name": spec} if isinstance(spec, str) else spec
        if registry is not None:
            registry.make_config(role, spec, where=section, base_dir=base_dir)  # validate now
        components[section] = dict(spec)
    return components


@attrs.frozen(kw_only=True)
class PipelineSpec:
    """What :func:`parse_pipeline_spec` reads from a config file."""

    components: dict[str, dict[str, Any]]
    prompts: Any
    generate: GenerateSection
    device: str = "cpu"  # concrete (``auto`` resolved)
    projector_hidden: int | None = None


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; any other name as given."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@attrs.frozen(kw_only=True)
class PipelineRunKeys:
    """The ``[run]`` keys a pipeline reads; the launcher's ``RunSection`` adds its own."""

    device: str = field("auto", help="torch device: auto (cuda when a GPU is visible, else cpu), cpu, cuda, cuda:1, …")
    projector_hidden: int | None = field(None, validator=in_range(1), help="projector MLP width")


def parse_pipeline_spec(data: Mapping[str, Any], *, base_dir: Path | None = None, registry=None) -> PipelineSpec:
    """The pipeline part of a config mapping, validated (the launcher's sections are left to
    the launcher, which validates them when it runs the file)."""
    from c3llm.method.sequence import PromptConfig

    data = expand_placeholders(data)
    components = parse_components(data, base_dir=base_dir, registry=registry)
    run = data.get("run", {})
    if not isinstance(run, Mapping):
        raise ConfigError(f"[run] must be a table, got {type(run).__name__}")
    names = {f.name for f in attrs.fields(PipelineRunKeys)}
    keys = from_mapping(PipelineRunKeys, {k: v for k, v in run.items() if k in names}, where="run")
    return PipelineSpec(
        components=components,
        prompts=from_mapping(PromptConfig, data.get("prompts", {}), where="prompts", base_dir=base_dir),
        generate=from_mapping(GenerateSection, data.get("generate", {}), where="generate", base_dir=base_dir),
        device=resolve_device(keys.device), projector_hidden=keys.projector_hidden)
