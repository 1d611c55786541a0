"""Launcher stages and the run folder they share.

``c3llm-run CONFIG`` runs ``[run] stages`` in order; each stage can be re-run and resumes
or skips what is done::

    {out_dir}/{name}/
      resolved_config.json   the config with every default filled + plugin versions
      codec/                 train-codec: the trained codec (loaded by later stages)
      initial/               the pipeline before LM training (fixes random inits for resume)
      cache/                 prepare: codes and encoder features per clip and extractor
      train/lm, train/nar    train: checkpoints and metrics.jsonl of each stage
      pipeline/              train: the trained pipeline (Pipeline.from_pretrained(run dir))
      generated/             predict: audio and captions for the evaluation splits
      eval/                  evaluate: results.json and report.md
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from c3llm.app.run_config import RunConfig, canonical_stages
from c3llm.app.training.tasks import LM_TASKS
from c3llm.core.checkpoint import write_json
from c3llm.core.errors import ConfigError, InputError
from c3llm.method.pipeline_config import resolve_device

log = logging.getLogger(__name__)




class RunContext:
    """What every stage needs: the config, the registry and the run folder."""

    def __init__(self, config: RunConfig, registry, *, progress: bool = True):
        self.config, self.registry, self.progress = config, registry, progress
        self.directory = config.run.directory
        self.device = resolve_device(config.run.device)  # run.device = "auto": cuda if available

    # -- datasets -------------------------------------------------------------------------

    def dataset(self, spec: dict[str, Any], where: str):
        dataset = self.registry.build("dataset", spec, where=where, base_dir=self.config.base_dir)
        dataset.ensure_available(progress=self.progress)
        return dataset

    def train_sets(self) -> list[tuple[Any, list]]:
        """Each training dataset (:class:`~c3llm.app.run_config.TrainSet`) with its samples."""
        sets = self.config.data.train_sets()
        if not sets:
            raise ConfigError("this stage needs [data.train] = {name = \"<dataset>\", root = ...}")
        return [(train_set, list(self.dataset(train_set.spec, train_set.label))) for train_set in sets]

    def train_samples(self) -> list:
        """The samples of every training dataset, in config order."""
        return [sample for _, samples in self.train_sets() for sample in samples]

    def reference_samples(self) -> list:
        """The labelled clips the reference classifier learns from: ``[data] reference``, else
        the training data (empty when there is neither)."""
        if self.config.data.reference is not None:
            return list(self.dataset(self.config.data.reference, "data.reference"))
        return self.train_samples() if self.config.data.train is not None else []

    def eval_samples(self) -> dict[str, list]:
        out = {}
        for label, spec in self.config.data.eval.items():
            samples = list(self.dataset(spec, f"data.eval.{label}"))
            limit = self.config.data.limit_eval
            out[label] = samples[:limit] if limit else samples
        return out

    # -- pipelines ------------------------------------------------------------------------

    @property
    def codec_dir(self) -> Path:
        return self.directory / "codec"

    def component_specs(self) -> dict[str, dict[str, Any]]:
        """The config's components; the decoder points at the codec trained in this run."""
        specs = {k: dict(v) for k, v in self.config.components.items()}
        decoder = specs["decoder"]
        if not decoder.get("pretrained") and (self.codec_dir / "report.json").is_file():
            decoder["pretrained"] = str(self.codec_dir)
        return specs

    def codec(self):
        """The run's codec on its own, weights loaded (once trained, the one every pipeline of
        this run decodes with)."""
        codec = self.registry.build("decoder", self.component_specs()["decoder"], where="decoder",
                                    base_dir=self.config.base_dir)
        codec.load_pretrained()
        return codec

    def model_paths(self) -> dict[str, str]:
        """The config's files of the frozen models, by dotted key: a saved pipeline of this run
        loads them from where the config says now (models moved and the config's paths changed),
        not from where they were when it was saved."""
        return {f"{section}.{key}": value for section, spec in self.component_specs().items()
                for key, value in spec.items()
                if key != "name" and isinstance(value, str) and "/" in value and Path(value).exists()}

    def initial_pipeline(self):
        """The untrained pipeline, saved once so that every later stage (and a resumed run)
        starts from the same random initialisation."""
        from c3llm.method.assembly import assemble, build_components
        from c3llm.sdk.pipeline import Pipeline

        folder = self.directory / "initial"
        if (folder / "pipeline.json").is_file():
            return Pipeline.from_pretrained(folder, device=self.device, paths=self.model_paths())
        import torch

        torch.manual_seed(self.config.run.seed)
        components = build_components(self.registry, self.component_specs(),
                                      base_dirs={k: self.config.base_dir for k in self.config.components})
        model = assemble(components, prompts=self.config.prompts, projector_hidden=self.config.run.projector_hidden)
        pipe = Pipeline(model.to(self.device), generate=self.config.generate)
        pipe.save_pretrained(folder)
        return pipe

    def trained_pipeline(self):
        from c3llm.sdk.pipeline import Pipeline

        folder = self.directory / "pipeline"
        if not (folder / "pipeline.json").is_file():
            raise InputError(f"no trained pipeline in {folder}: run the train stage first")
        return Pipeline.from_pretrained(folder, device=self.device, paths=self.model_paths())


# ---------------------------------------------------------------------------------------
# Stages


def stage_pretrain(ctx: RunContext) -> None:
    """Pretrain the foundation models of ``[pretrain] models`` on the foundation corpus
    (reused when their config has not changed; see :mod:`c3llm.app.pretrain.stage`)."""
    from c3llm.app.pretrain.stage import stage_pretrain as pretrain

    pretrain(ctx)


def stage_train_codec(ctx: RunContext) -> None:
    """Train the codec on the training split's audio (skipped when the config names
    pretrained codec weights or this run already trained one)."""
    from c3llm.app.training.codec import train_codec

    decoder_spec = ctx.config.components["decoder"]
    if decoder_spec.get("pretrained"):
        log.info("train-codec: skipped, the decoder loads pretrained weights (%s)", decoder_spec["pretrained"])
        return
    if (ctx.codec_dir / "report.json").is_file():
        log.info("train-codec: skipped, %s already holds a trained codec", ctx.codec_dir)
        return
    codec = ctx.codec()  # not trained yet, so built from the config's spec as it stands
    train_cfg = ctx.config.codec_train
    train_paths = [s.audio_path for s in ctx.train_samples() if s.audio_path is not None] \
        if ctx.config.data.train is not None else []  # also writes a world the eval splits read
    eval_paths = [s.audio_path for samples in ctx.eval_samples().values() for s in samples if s.audio_path][:16]
    if train_cfg.corpus == "foundation":  # procedural audio, not the task world (issue 11)
        report = _foundation_codec(ctx, codec, eval_paths)
    else:
        report = train_codec(codec, train_paths, train_cfg, ctx.codec_dir, eval_data=eval_paths or None,
                             progress=ctx.progress)
    after = report["quality_after"]
    log.info("train-codec: %d clips, %.0f s; held-out mel distance %.3f, SI-SNR %.2f dB",
             report["train_clips"], report["train_seconds"], after.get("mel_distance", float("nan")),
             after.get("si_snr_db", float("nan")))


def _foundation_codec(ctx: RunContext, codec, eval_paths: list) -> dict[str, Any]:
    """Train ``codec`` on the foundation corpus once per (decoder config, [codec_train]) and
    copy it into the run: ``{out_dir}/foundation/codec-<key>/`` is shared by runs (as the
    pretrain stage's models are), so a second demo reuses it."""
    import shutil

    from c3llm.app.foundation import foundation_clips
    from c3llm.app.pretrain.cache import cached
    from c3llm.app.training.codec import train_codec
    from c3llm.core.checkpoint import read_json
    from c3llm.core.config import to_mapping

    train_cfg = ctx.config.codec_train
    spec = {k: v for k, v in ctx.config.components["decoder"].items() if k != "pretrained"}
    key = {"decoder": spec, "codec_train": to_mapping(train_cfg)}

    def build(folder: Path) -> dict[str, Any]:
        clips = foundation_clips(train_cfg.foundation_clips, train_cfg.foundation_seconds,
                                 train_cfg.foundation_seed, codec.sample_rate)
        return train_codec(codec, clips, train_cfg, folder, eval_data=eval_paths or None, progress=ctx.progress)

    folder = cached(Path(ctx.config.run.out_dir) / "foundation", "codec", key, build)
    shutil.copytree(folder, ctx.codec_dir, dirs_exist_ok=True)
    report = {**read_json(ctx.codec_dir / "report.json"), "checkpoint": str(ctx.codec_dir), "foundation_cache": str(folder)}
    write_json(ctx.codec_dir / "report.json", report)
    return report


def stage_prepare(ctx: RunContext) -> None:
    """Cache codec codes and encoder features for the training and evaluation splits."""
    from c3llm.app.features.prepare import prepare_features

    pipe = ctx.initial_pipeline()
    splits = {"train": ctx.train_samples()} if ctx.config.data.train else {}
    splits.update(ctx.eval_samples())
    reports = {}
    for label, samples in splits.items():
        report = prepare_features(pipe.model, samples, ctx.directory / "cache", progress=ctx.progress,
                                  jobs=ctx.config.run.prepare_jobs)
        log.info("prepare %s: %s", label, report.summary())
        reports[label] = report.to_dict()
    write_json(ctx.directory / "cache" / "prepare_report.json", reports)


def load_items(ctx: RunContext, model, samples) -> list[dict[str, Any]]:
    from c3llm.app.features.prepared import load_prepared

    return list(load_prepared(ctx.directory / "cache", model, samples))


def train_items(ctx: RunContext, model) -> list[dict[str, Any]]:
    """Prepared items of every training set; with several sets each item carries ``source``,
    ``source_weight`` and ``tasks`` for the samplers (one set: none, the single-set behaviour)."""
    sets = ctx.train_sets()
    items = []
    for train_set, samples in sets:
        loaded = load_items(ctx, model, samples)
        if len(sets) > 1 or train_set.tasks != LM_TASKS:
            for item in loaded:
                item.update(source=train_set.label, source_weight=train_set.weight, tasks=train_set.tasks)
        items += loaded
    return items


def stage_train(ctx: RunContext) -> None:
    """LM stage (projectors + backbone's trainable set, eq. 1), then NAR stage (eq. 2);
    both resume from their last checkpoint. Saves the trained pipeline."""
    from c3llm.app.training.loop import Trainer, distributed_context
    from c3llm.app.training.tasks import (
        LMObjective,
        NARObjective,
        NARSampler,
        TaskSampler,
        freeze_for_stage,
    )

    cfg = ctx.config.train
    pipe = ctx.initial_pipeline()
    model = pipe.model
    items = train_items(ctx, model)
    if not items:
        raise InputError("no prepared training items: run the prepare stage first")
    seed = ctx.config.run.seed
    if cfg.lm.steps:
        freeze_for_stage(model, "lm")
        sampler = TaskSampler(items, model.sequences, cfg.tasks, cfg.lm.batch_size, seed=seed,
                              cond_dropout=cfg.lm_cond_dropout)
        Trainer(LMObjective(model), sampler, cfg.lm, ctx.directory / "train" / "lm", name="lm",
                seed=seed, progress=ctx.progress).run()
    if cfg.nar.steps and model.refiner is not None:
        freeze_for_stage(model, "nar")
        sampler = NARSampler(items, cfg.tasks, cfg.nar.batch_size, seed=seed)
        Trainer(NARObjective(model), sampler, cfg.nar, ctx.directory / "train" / "nar", name="nar",
                seed=seed, progress=ctx.progress).run()
    rank, _ = distributed_context()
    if rank == 0:
        pipe.save_pretrained(ctx.directory / "pipeline")
        log.info("train: saved the trained pipeline to %s", ctx.directory / "pipeline")


def stage_predict(ctx: RunContext) -> None:
    """Generate for each evaluation split: T2A from the first caption, V2A from the video,
    A2T captions from the audio. Writes WAVs and ``captions.jsonl`` under ``generated/``."""
    from c3llm.app.evaluation.generate import generate_for_split

    pipe = ctx.trained_pipeline()
    for label, samples in ctx.eval_samples().items():
        generate_for_split(pipe, samples, ctx.directory / "generated" / label, seed=ctx.config.run.seed,
                           progress=ctx.progress)


def stage_evaluate(ctx: RunContext) -> None:
    """Metrics, ablations and the report (see :mod:`c3llm.app.evaluation.runner`)."""
    from c3llm.app.evaluation.runner import evaluate_run

    evaluate_run(ctx)


STAGE_FUNCTIONS: dict[str, Callable[[RunContext], None]] = {
    "pretrain": stage_pretrain,
    "train-codec": stage_train_codec,
    "prepare": stage_prepare,
    "train": stage_train,
    "predict": stage_predict,
    "evaluate": stage_evaluate,
}


def run_stages(config: RunConfig, stages: Sequence[str], *, registry, progress: bool = True) -> RunContext:
    """Run ``stages`` in order, after recording the resolved config in the run folder."""
    if not stages:
        raise ConfigError("no stages to run: set [run] stages = [...] or pass --stage NAME")
    stages = canonical_stages(stages)
    if config.run.threads:
        import torch

        torch.set_num_threads(config.run.threads)
    ctx = RunContext(config, registry, progress=progress)
    ctx.directory.mkdir(parents=True, exist_ok=True)
    resolved = config.to_mapping(registry)
    resolved["plugins"] = {s.name: {"role": s.role, "plugin": s.plugin, "distribution": s.distribution,
                                    "version": s.version} for s in registry.specs()}
    write_json(ctx.directory / "resolved_config.json", resolved)
    timings = {}
    for stage in stages:
        log.info("== stage %s ==", stage)
        started = time.perf_counter()
        STAGE_FUNCTIONS[stage](ctx)
        timings[stage] = round(time.perf_counter() - started, 1)
        log.info("== stage %s done in %.1f s ==", stage, timings[stage])
    timing_file = ctx.directory / "timings.json"
    previous = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    write_json(timing_file, {**previous, **timings})
    return ctx
