"""The evaluate stage: every system of every evaluation split scored, and a report to read.

:func:`evaluate_run` (called by ``c3llm-run evaluate``):

1. makes sure ``generated/{split}/`` holds every output (generates what is missing; resumable);
2. sets up the audio networks behind FD / KL / MKL / ISc: the reference classifier trained on
   the training split's labels (scores named ``*_synth``), and PANNs CNN14 / VGGish when
   ``[evaluate]`` names their checkpoints (the paper's names ``fd``, ``kl``, ``mkl``, ``isc``;
   ``fad``), and the CLAP that ``clap_checkpoint`` names (``clap_score_inproject`` /
   ``_external`` on T2A). A network that is not there is reported as unavailable, never replaced;
3. scores, per split: T2A (C3LLM, w/o NAR), V2A (C3LLM, w/o NAR, mean-pooled video), A2T,
   the chance and retrieval baselines (training data only; audio baselines also through the
   run's codec, like for like) and the reference as a ceiling, and a verdict: the model
   against its strongest baseline on each metric that scores following the condition;
4. writes ``eval/results.json`` (every number, what was unavailable and why) and the report
   (``report.md``, ``report.html``, figures, playable samples; see :mod:`.report`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from c3llm.app.evaluation import baselines
from c3llm.app.evaluation.generate import CAPTIONS_FILE, read_captions
from c3llm.app.evaluation.networks import (
    AudioNetwork,
    load_audios,
    setup_clap_scoring,
    setup_networks,
    setup_reference_classifier,
)
from c3llm.app.evaluation.scorer import Scorer, isc_splits, synthetic_rows
from c3llm.app.evaluation.settings import EvaluateSection
from c3llm.app.evaluation.verdict import ablations, verdict
from c3llm.core.checkpoint import write_json
from c3llm.core.errors import (
    CheckpointError,
    ConfigError,
    InputError,
    UnavailableError,
)
from c3llm.core.media import Audio, load_audio
from c3llm.core.paths import file_stem
from c3llm.method.generation import resynthesize

log = logging.getLogger(__name__)

TASK_LABELS = {"t2a": "T2A", "v2a": "V2A", "a2t": "A2T"}
#: task -> system key -> (generated folder, label, kind)
CODEC_CEILING = ("codec", "Reference through the codec (codec ceiling)", "ceiling")
GENERATED_SYSTEMS: dict[str, dict[str, tuple[str, str, str]]] = {
    "t2a": {"c3llm": ("t2a", "C3LLM", "model"),
            "c3llm_no_nar": ("t2a_no_nar", "C3LLM w/o NAR", "ablation"),
            "codec": CODEC_CEILING},
    "v2a": {"c3llm": ("v2a", "C3LLM", "model"),
            "c3llm_no_nar": ("v2a_no_nar", "C3LLM w/o NAR", "ablation"),
            "c3llm_pooled": ("v2a_pooled", "C3LLM, mean-pooled video", "ablation"),
            "codec": CODEC_CEILING},
}


# ---------------------------------------------------------------------------------------
# Generation


def expected_outputs(components: dict[str, Any]) -> tuple[list[str], bool]:
    """The generated audio folders and whether captions are expected, from the config's
    components (V2A needs a video encoder, A2T an audio encoder)."""
    folders = ["t2a", "t2a_no_nar", "codec"]
    if "video_encoder" in components:
        folders += ["v2a", "v2a_no_nar", "v2a_pooled"]
    return folders, "audio_encoder" in components


def missing_outputs(gen_dir: Path, ids: Sequence[str], folders: Sequence[str], captions: bool,
                    video_ids: Sequence[str] | None = None) -> list[str]:
    """What ``gen_dir`` lacks for ``ids``: one line per incomplete output (empty when complete).
    ``video_ids``: the clips that have a video (default: all); only they get ``v2a*`` outputs."""
    missing = []
    for folder in folders:
        wanted = ids if video_ids is None or not folder.startswith("v2a") else [i for i in ids if i in set(video_ids)]
        count = sum(not (gen_dir / folder / f"{file_stem(i)}.wav").is_file() for i in wanted)
        if count:
            missing.append(f"{folder}: {count} of {len(wanted)} clips")
    if captions:
        have = read_captions(gen_dir / CAPTIONS_FILE)
        count = sum(i not in have for i in ids)
        if count:
            missing.append(f"{CAPTIONS_FILE}: {count} of {len(ids)} clips")
    return missing


def ensure_generated(ctx, splits: dict[str, list]) -> None:
    """Generate the outputs an evaluation split lacks (resumes; loads the pipeline only if needed)."""
    from c3llm.app.evaluation.generate import generate_for_split

    folders, captions = expected_outputs(ctx.config.components)
    pipe = None
    for label, samples in splits.items():
        gen_dir = ctx.directory / "generated" / label
        missing = missing_outputs(gen_dir, [s.id for s in samples], folders, captions,
                                  [s.id for s in samples if s.video_path is not None])
        if not missing:
            continue
        log.info("evaluate %s: generated outputs incomplete (%s); generating them", label, "; ".join(missing))
        pipe = pipe or ctx.trained_pipeline()
        generate_for_split(pipe, samples, gen_dir, seed=ctx.config.run.seed, progress=ctx.progress)


# ---------------------------------------------------------------------------------------
# Networks behind the audio metrics


# ---------------------------------------------------------------------------------------
# Scoring


def _system(label: str, kind: str, source: str, count: int, scored: tuple[dict, dict]) -> dict[str, Any]:
    metrics, unavailable = scored
    return {"label": label, "kind": kind, "source": source, "num_clips": count, "metrics": metrics,
            "unavailable": unavailable}


class TrainingPool:
    """The training split, as the baselines use it: captions, audio on demand, embeddings."""

    def __init__(self, samples: Sequence):
        self.samples = list(samples)
        self.captions = [list(s.captions) for s in self.samples]
        self._audio: dict[int, Audio] = {}

    def audio(self, index: int) -> Audio:
        if index not in self._audio:
            self._audio[index] = load_audio(self.samples[index].audio_path)
        return self._audio[index]

    def embeddings(self, network: AudioNetwork, chunk: int = 64) -> np.ndarray:
        """Embedding of every training clip ``(M, D)`` (one row per clip), computed in chunks."""
        rows = []
        for start in range(0, len(self.samples), chunk):
            part = [load_audio(s.audio_path) for s in self.samples[start:start + chunk]]
            rows.append(network.embed(("train", start), part))
        return np.concatenate(rows)


def evaluate_split(label: str, samples: list, references: list[Audio], gen_dir: Path, scorer: Scorer,
                   pool: TrainingPool, *, seed: int, retrieval_network: AudioNetwork | None,
                   global_unavailable: dict[str, str], codec: Any = None) -> dict[str, Any]:
    """Scores of every task and system on one evaluation split.

    :param codec: the run's codec; when given, each audio baseline is also scored through it
        (encode -> decode), like for like with the model, whose audio always is.
    """
    ids = [s.id for s in samples]
    resynthesized: dict[Any, list[Audio]] = {}

    def audio_baseline(out: dict[str, Any], task: str, key: str, name: str, audios: list[Audio], set_key: Any,
                       **kw: Any) -> None:
        out[key] = _system(name, "baseline", "training split", len(ids), scorer.audio(task, set_key, audios, **kw))
        if codec is not None:
            if set_key not in resynthesized:
                resynthesized[set_key] = [resynthesize(codec, a) for a in audios]
            out[f"{key}_codec"] = _system(f"{name}, through the codec", "baseline", "training split through the codec",
                                          len(ids), scorer.audio(task, (*set_key, "codec"), resynthesized[set_key], **kw))

    rows = synthetic_rows(samples)
    ref_key = (label, "reference")
    tasks: dict[str, Any] = {}
    for task, systems in GENERATED_SYSTEMS.items():
        present = {k: v for k, v in systems.items() if (gen_dir / v[0]).is_dir()}
        if task == "v2a" and present and any(s.video_path is None for s in samples):
            log.info("evaluate %s: V2A not scored, %d of %d clips have no video", label,
                     sum(s.video_path is None for s in samples), len(samples))
            continue
        if not present:
            continue
        log.info("evaluate %s: scoring %s (%s)", label, TASK_LABELS[task], ", ".join(v[1] for v in present.values()))
        out: dict[str, Any] = {}
        # T2A: the caption each clip was generated from (generate_for_split prompts with the first)
        clip_kw: dict[str, Any] = dict(reference_key=ref_key, references=references, ids=ids, rows=rows,
                                           prompts=[s.captions[0] if s.captions else "" for s in samples]
                                           if task == "t2a" else None)
        for key, (folder, name, kind) in present.items():
            audios = load_audios([gen_dir / folder / f"{file_stem(i)}.wav" for i in ids])
            out[key] = _system(name, kind, f"generated/{label}/{folder}", len(ids), scorer.audio(
                task, (label, task, key), audios, **clip_kw))
        if pool.samples:
            # one draw per split, shared by T2A and V2A (the condition plays no part in it)
            picks = baselines.chance_indices(len(ids), len(pool.samples), baselines.seeded_rng(seed, label, "chance-audio"))
            audios = [baselines.fit_duration(pool.audio(i), r.duration) for i, r in zip(picks, references)]
            audio_baseline(out, task, "chance", "Chance (random training clip)", audios, (label, "chance"), **clip_kw)
            if task == "t2a":
                prompts = [s.captions[0] if s.captions else "" for s in samples]
                picks = baselines.retrieve_by_caption(prompts, pool.captions,
                                                      baselines.seeded_rng(seed, label, task, "retrieval"))
                audios = [baselines.fit_duration(pool.audio(i), r.duration) for i, r in zip(picks, references)]
                audio_baseline(out, task, "retrieval", "Retrieval (training clip sharing most caption words)", audios,
                               (label, task, "retrieval"), **clip_kw)
        if "codec" in out:  # listed beside the other ceiling
            out["codec"] = out.pop("codec")
        out["reference"] = _system("Reference audio (ceiling)", "ceiling", "evaluation split", len(ids),
                                   scorer.audio(task, ref_key, references, ceiling=True, **clip_kw))
        tasks[task] = {"label": TASK_LABELS[task], "systems": out}
    captions = read_captions(gen_dir / CAPTIONS_FILE)
    if captions and all(i in captions for i in ids):
        log.info("evaluate %s: scoring A2T", label)
        refs = [list(captions[i].get("references") or s.captions) for i, s in zip(ids, samples)]
        out = {"c3llm": _system("C3LLM", "model", f"generated/{label}/{CAPTIONS_FILE}", len(ids),
                                scorer.captions([captions[i]["caption"] for i in ids], refs, rows))}
        if pool.samples:
            chance = baselines.chance_captions(len(ids), pool.captions, baselines.seeded_rng(seed, label, "a2t", "chance"))
            out["chance"] = _system("Chance (random training caption)", "baseline", "training split", len(ids),
                                    scorer.captions(chance, refs, rows))
            if retrieval_network is not None:
                nearest = baselines.nearest_neighbours(retrieval_network.embed(ref_key, references),
                                                       pool.embeddings(retrieval_network))
                picked = [pool.captions[i][0] if pool.captions[i] else "" for i in nearest]
                out["retrieval"] = _system(f"Retrieval (caption of the nearest training clip, {retrieval_network.name})",
                                           "baseline", "training split", len(ids), scorer.captions(picked, refs, rows))
        if all(len(r) >= 2 for r in refs):
            out["reference"] = _system("Reference caption vs the other references (ceiling)", "ceiling",
                                       "evaluation split", len(ids),
                                       scorer.captions([r[0] for r in refs], [r[1:] for r in refs], rows))
        tasks["a2t"] = {"label": TASK_LABELS["a2t"], "systems": out}
    for task in tasks.values():
        merged: dict[str, str] = {}
        for system in task["systems"].values():
            merged.update(system["unavailable"])
        task["unavailable"] = merged
    for task_key in ("t2a", "v2a"):
        if task_key in tasks:
            relevant = {"fad", "fd", "isc", "fd_synth", "isc_synth", "kl" if task_key == "t2a" else "mkl",
                        "kl_synth" if task_key == "t2a" else "mkl_synth", *(["clap_score"] if task_key == "t2a" else [])}
            tasks[task_key]["unavailable"].update({k: v for k, v in global_unavailable.items() if k in relevant})
            if rows is None:
                tasks[task_key]["unavailable"]["synth_audio"] = "the clips carry no synthetic-world metadata"
    if "a2t" in tasks and rows is None:
        tasks["a2t"]["unavailable"]["synth_captions"] = "the clips carry no synthetic-world metadata"
    return {"num_clips": len(ids), "generated": f"generated/{label}",
            "isc_splits": isc_splits(scorer.settings.isc_splits, len(ids)), "tasks": tasks, "ablations": ablations(tasks),
            "verdict": verdict(tasks)}


def _finite(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become ``None`` (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------------------
# The stage


def evaluate_run(ctx) -> dict[str, Any]:
    """Score the run's evaluation splits; write ``eval/results.json`` and the report.

    :param ctx: a :class:`c3llm.app.stages.RunContext`.
    :return: the results (as written to results.json).
    """
    from c3llm.app.evaluation.figures import collect_examples
    from c3llm.app.evaluation.report import write_report

    started = time.perf_counter()
    settings = ctx.config.sections.get("evaluate") or EvaluateSection()
    out_dir = ctx.directory / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = ctx.eval_samples()
    if not splits:
        raise ConfigError("the evaluate stage needs evaluation data: add [data.eval] test = {name = \"<dataset>\", ...}")
    for label, samples in splits.items():
        if not samples:
            raise InputError(f"evaluation split {label!r} has no usable clips; check its dataset config")
        if any(s.audio_path is None for s in samples):
            raise InputError(f"evaluation split {label!r} has clips without reference audio; every metric needs it")
    clap, clap_info = setup_clap_scoring(settings)  # before generating: a wrong path fails in seconds
    ensure_generated(ctx, splits)

    train = ctx.train_samples() if ctx.config.data.train is not None else []
    references = {label: load_audios([s.audio_path for s in samples]) for label, samples in splits.items()}
    classifier, classifier_info = setup_reference_classifier(settings, ctx.reference_samples(), splits, references,
                                                             out_dir / "reference_classifier")
    networks, unavailable = setup_networks(settings, classifier)
    if clap is None:
        unavailable["clap_score"] = clap_info["reason"]
    scorer = Scorer(ctx.registry, networks, settings, classifier, clap)
    pool = TrainingPool(train)
    retrieval_network = next((n for n in networks if n.name != "vggish"), None)  # VGGish: rows per frame, not clip
    if retrieval_network is None:
        unavailable["retrieval (A2T)"] = "needs an audio embedding network (reference classifier or PANNs)"
    if not train:
        unavailable["baselines"] = "chance and retrieval baselines need a training split ([data.train])"

    results: dict[str, Any] = {
        "run": {"name": ctx.config.run.name, "directory": str(ctx.directory), "seed": ctx.config.run.seed},
        "networks": {n.name: {"classifies": n.classifies} for n in networks},
        "reference_classifier": classifier_info,
        "clap_score": clap_info,
        "splits": {},
        "unavailable": {},
    }
    codec = None
    if train:
        try:
            codec = ctx.codec().to(ctx.device).eval()
        except (UnavailableError, CheckpointError) as exc:
            unavailable["baselines through the codec"] = f"the run's codec could not be loaded: {exc}"
            log.warning("evaluate: baselines are scored without the codec: %s", exc)
    for label, samples in splits.items():
        results["splits"][label] = evaluate_split(
            label, samples, references[label], ctx.directory / "generated" / label, scorer, pool,
            seed=ctx.config.run.seed, retrieval_network=retrieval_network, global_unavailable=unavailable,
            codec=codec)
    merged = dict(unavailable)
    for split in results["splits"].values():
        for task in split["tasks"].values():
            merged.update(task["unavailable"])
    results["unavailable"] = dict(sorted(merged.items()))
    results = _finite(results)
    write_json(out_dir / "results.json", results)
    examples = collect_examples(ctx.directory, splits, settings.num_examples)
    results["report"] = write_report(ctx.directory, results, examples)
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out_dir / "results.json", results)
    log.info("evaluate: wrote %s and %s in %.1f s", out_dir / "results.json", out_dir / "report.html", results["seconds"])
    return results
