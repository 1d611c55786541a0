"""The launcher's TOML schema: the pipeline's sections plus those of a run.

::

    [decoder]        name = "encodec"  + that plugin's config keys
    [backbone]       name = "gemma"    + ...
    [refiner]        name = "nar"      (optional)
    [audio_encoder]  name = "clap"     (optional: enables audio -> text)
    [video_encoder]  name = "rgb-flow" (optional: enables video -> audio)
    [prompts]        instruction texts
    [run]            name, out_dir, seed, stages, device
    [generate]       sampling and caption decoding
    [data]           datasets: train, eval.<label>
    [pretrain]       the foundation corpus and models the pretrain stage trains
    [codec_train]    the codec training stage
    [train]          the LM stage (eq. 1) and the NAR stage (eq. 2)
    [evaluate]       metric networks (reference classifier, PANNs, VGGish), SPICE, report size

Component sections are checked against the config class of the plugin they name; the
others against the attrs classes in :data:`SECTIONS`. Unknown sections and keys are errors.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from c3llm.app.evaluation.settings import EvaluateSection
from c3llm.app.pretrain.settings import PretrainSection
from c3llm.app.training.codec import CodecTrainConfig
from c3llm.app.training.loop import OptimConfig
from c3llm.app.training.tasks import LM_TASKS, TaskWeights
from c3llm.core.config import field, from_mapping, in_range, to_mapping
from c3llm.core.errors import ConfigError, did_you_mean
from c3llm.core.paths import file_name_validator, name_problem
from c3llm.method.pipeline_config import (
    COMPONENT_SECTIONS,
    GenerateSection,
    PipelineRunKeys,
    expand_placeholders,
    parse_components,
)
from c3llm.method.sequence import PromptConfig

#: Largest run.seed (seeds feed 64-bit generators).
MAX_SEED = 2**63 - 1

STAGES = ("pretrain", "train-codec", "prepare", "train", "predict", "evaluate")
#: former stage names, still accepted (with a deprecation warning) for one release.
RENAMED_STAGES = {"generate": "predict"}


def canonical_stages(stages: Sequence[str]) -> tuple[str, ...]:
    """Stage names with renamed ones mapped to their new names (warned), unknown ones refused."""
    out = []
    for stage in stages:
        if stage in RENAMED_STAGES:
            message = (f"stage {stage!r} is now called {RENAMED_STAGES[stage]!r} (the `generate` command makes "
                       "audio from a checkpoint); the old name will be removed in the next release")
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            logging.getLogger("c3llm").warning(message)
            stage = RENAMED_STAGES[stage]
        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}.{did_you_mean(stage, STAGES)} Stages: {', '.join(STAGES)}")
        out.append(stage)
    return tuple(out)



@attrs.frozen(kw_only=True)
class RunSection(PipelineRunKeys):
    """Where and how a launcher run happens (plus the keys a pipeline reads: device, projector_hidden)."""

    name: str = field("run", validator=file_name_validator("run.name"),
                      help="run name (folder under out_dir; a plain name, not a path)")
    out_dir: str = field("runs", help="parent folder of run folders (relative to the working directory)")
    seed: int = field(0, validator=in_range(0, MAX_SEED), help="global seed (every random draw derives from it)")
    stages: tuple[str, ...] = field((), help=f"stages `c3llm-run CONFIG` runs, from {STAGES}")
    threads: int | None = field(None, validator=in_range(1),
                                help="torch CPU threads (unset: torch's default; 1 is fastest on a busy machine)")
    prepare_jobs: int = field(1, validator=in_range(1),
                              help="worker processes of the prepare stage (each gets threads / jobs torch threads)")

    def __attrs_post_init__(self) -> None:
        try:
            object.__setattr__(self, "stages", canonical_stages(self.stages))
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @property
    def directory(self) -> Path:
        return (Path(self.out_dir).expanduser() / self.name).absolute()


@attrs.frozen
class TrainSet:
    """One training dataset of a mix: its plugin table, the LM tasks it serves, its weight."""

    label: str  # where it is in the config, e.g. data.train[1]
    spec: dict[str, Any]  # the dataset plugin's table (without tasks / weight)
    tasks: tuple[str, ...]
    weight: float


@attrs.frozen(kw_only=True)
class DataSection:
    """Datasets of a run, each ``{name = "<dataset plugin>", …its config}``.

    ``train`` is one such table, or a mix (the paper's: AudioCaps and Clotho for T2A/A2T,
    VGGSound for V2A) as a list of tables or as labelled tables (``[data.train.vggsound]``,
    which ``--set data.train.vggsound.root=...`` can reach). A training table may add
    ``tasks = ["t2a", "a2t"]`` (the LM tasks it serves; default all it has the data for) and
    ``weight`` (the probability of drawing from it, relative to the other sets that serve
    the task; default 1.0; within a set, clips are drawn uniformly).
    """

    train: dict[str, Any] | list[dict[str, Any]] | None = field(
        None, help="training data: a dataset table, or a list / labelled tables of them, each with optional "
                   "tasks = [...] and weight")
    eval: dict[str, dict[str, Any]] = field(factory=dict, help="evaluation splits by label, e.g. test, test_novel")
    limit_eval: int | None = field(None, validator=in_range(1), help="clips per evaluation split (generate/evaluate)")
    reference: dict[str, Any] | None = field(
        None, help="labelled clips the evaluation's reference classifier learns from (default: the training data); "
                   "a judge independent of the training split, e.g. a world with every (source, pitch) pair")

    def train_sets(self) -> list[TrainSet]:
        """The training datasets, checked; empty when there is no ``train``."""
        if self.train is None:
            return []
        if isinstance(self.train, list):
            tables = [(f"data.train[{i}]", table) for i, table in enumerate(self.train)]
        elif "name" not in self.train and self.train and all(isinstance(v, Mapping) for v in self.train.values()):
            tables = [(f"data.train.{key}", table) for key, table in self.train.items()]
        else:
            tables = [("data.train", self.train)]
        if not tables:
            raise ConfigError("data.train is empty: give at least one dataset table")
        out = []
        for label, table in tables:
            if not isinstance(table, Mapping):
                raise ConfigError(f"{label} must be a dataset table {{name = ..., root = ...}}, got {table!r}")
            spec = {k: v for k, v in table.items() if k not in ("tasks", "weight")}
            tasks = table.get("tasks", LM_TASKS)
            if isinstance(tasks, str) or not isinstance(tasks, (list, tuple)) or not tasks:
                raise ConfigError(f"{label}.tasks must be a non-empty list of tasks from {list(LM_TASKS)}, got {tasks!r}")
            for task in tasks:
                if task not in LM_TASKS:
                    raise ConfigError(f"{label}.tasks: unknown task {task!r}.{did_you_mean(str(task), LM_TASKS)} "
                                      f"Tasks: {', '.join(LM_TASKS)}")
            weight = table.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
                raise ConfigError(f"{label}.weight must be a positive number, got {weight!r}")
            out.append(TrainSet(label, spec, tuple(dict.fromkeys(tasks)), float(weight)))
        return out


@attrs.frozen(kw_only=True)
class TrainSection:
    """The LM stage (eq. 1) and the NAR stage (eq. 2)."""

    lm: OptimConfig = field(factory=OptimConfig)
    nar: OptimConfig = field(factory=lambda: OptimConfig(steps=500))
    tasks: TaskWeights = field(factory=TaskWeights)
    lm_cond_dropout: float = field(
        0.1, validator=in_range(0.0, 1.0), aliases=("cond_dropout",),
        help="LM stage: probability that an audio-generation prompt is trained unconditioned (so that "
             "classifier-free guidance has an unconditional model); the refiner's own is [refiner] cond_dropout")



#: run-level section name -> attrs class.
SECTIONS: dict[str, type] = {
    "run": RunSection,
    "prompts": PromptConfig,
    "generate": GenerateSection,
    "data": DataSection,
    "pretrain": PretrainSection,
    "codec_train": CodecTrainConfig,
    "train": TrainSection,
    "evaluate": EvaluateSection,
}


@attrs.frozen
class RunConfig:
    """A validated launcher config.

    :ivar components: section -> ``{"name": ..., **params}`` exactly as given (validated).
    :ivar sections: section -> attrs instance (defaults for absent sections).
    """

    components: dict[str, dict[str, Any]]
    sections: dict[str, Any]
    base_dir: Path | None = None

    def __getattr__(self, name: str) -> Any:  # cfg.run, cfg.generate, …
        sections = object.__getattribute__(self, "sections")
        if name in sections:
            return sections[name]
        raise AttributeError(name)

    def to_mapping(self, registry=None) -> dict[str, Any]:
        """Plain data with every default filled in (component defaults need ``registry``)."""
        data: dict[str, Any] = {}
        for section, spec in self.components.items():
            if registry is not None:
                entry, config = registry.make_config(COMPONENT_SECTIONS[section], spec, where=section,
                                                     base_dir=self.base_dir)
                data[section] = {"name": entry.name, **to_mapping(config)}
            else:
                data[section] = dict(spec)
        for name, value in self.sections.items():
            data[name] = to_mapping(value)
        return data


def parse_run_config(data: Mapping[str, Any], *, base_dir: Path | None = None, registry=None) -> RunConfig:
    """Validate a launcher config mapping (strictly; see module doc)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a config must be a table, got {type(data).__name__}")
    data = expand_placeholders(data)
    known = list(COMPONENT_SECTIONS) + list(SECTIONS)
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown section [{key}].{did_you_mean(key, known)} Sections: {', '.join(known)}.")
    components = parse_components(data, base_dir=base_dir, registry=registry)
    sections = {name: from_mapping(cls, data.get(name, {}), where=name, base_dir=base_dir)
                for name, cls in SECTIONS.items()}
    sections["data"].train_sets()  # tasks / weight of each training set, checked now
    for label in sections["data"].eval:  # a label names the split's output folders
        problem = name_problem(label)
        if problem:
            raise ConfigError(f"data.eval: split label {label!r} {problem}; it becomes a folder name, "
                              "so use a plain name such as test")
    if registry is not None:  # dataset tables name plugins: check them now, not mid-run
        datasets = sections["data"]
        for train_set in datasets.train_sets():
            registry.make_config("dataset", train_set.spec, where=train_set.label, base_dir=base_dir)
        for label, spec in datasets.eval.items():
            registry.make_config("dataset", spec, where=f"data.eval.{label}", base_dir=base_dir)
        if datasets.reference is not None:
            registry.make_config("dataset", datasets.reference, where="data.reference", base_dir=base_dir)
    return RunConfig(components, sections, base_dir)
