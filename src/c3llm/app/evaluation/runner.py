"""The evaluate stage: every system of every evaluation split scored, and a report to read.

:func:`evaluate_run` (called by ``c3llm-run evaluate``):

1. makes sure ``generated/{split}/`` holds every output (generates what is missing; resumable);
2. sets up the audio networks behind FD / KL / MKL / ISc: the reference classifier trained on
   the training split's labels (scores named ``*_synth``), and PANNs CNN14 / VGGish when
   ``[evaluate]`` names their checkpoints (the paper's names ``fd``, ``kl``, ``mkl``, ``isc``;
   ``fad``). A network that is not there is reported as unavailable, never replaced;
3. scores, per split: T2A (C3LLM, w/o NAR), V2A (C3LLM, w/o NAR, mean-pooled video), A2T,
   the chance and retrieval baselines (training data only; audio baselines also through the
   run's codec, like for like) and the reference as a ceiling, and a verdict: the model
   against its strongest baseline on each metric that scores following the condition;
4. writes ``eval/results.json`` (every number, what was unavailable and why) and the report
   (``report.md``, ``report.html``, figures, playable samples; see :mod:`.report`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from c3llm.core.checkpoint import write_json
from c3llm.core.config import field, in_range
from c3llm.core.errors import CheckpointError, ConfigError, InputError, UnavailableError, did_you_mean
from c3llm.app.evaluation import baselines
from c3llm.app.evaluation.generate import CAPTIONS_FILE, read_captions, resynthesize
from c3llm.scoring.reference_classifier import ReferenceTrainingConfig
from c3llm.app.evaluation.report import lower_is_better
from c3llm.core.media import Audio, load_audio

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
#: metrics the per-frame vs mean-pooled video ablation is about (synchronisation).
SYNC_METRICS = ("onset_acc", "onset_ap", "onset_f1", "event_count_acc")
#: Metrics that score whether each output follows its own condition (paired with its clip),
#: per task: the verdict compares the model with the baselines on these. FD and ISc score
#: the set of clips only, which a random real recording samples perfectly; they are judged
#: against the codec ceiling instead.
CONDITIONED_METRICS = {
    "t2a": ("kl", "kl_synth", "source_acc", "pitch_acc", "event_count_acc"),
    "v2a": ("mkl", "mkl_synth", "onset_acc", "onset_ap", "source_acc", "onset_f1", "pitch_acc", "event_count_acc"),
    "a2t": ("cider_d", "spice", "spider", "caption_source_acc", "caption_pitch_acc", "caption_count_acc",
            "caption_attribute_acc"),
}
#: Of those, the paper's own (Table 1; ``*_synth`` = the same metric on the stand-in network).
PAPER_METRICS = frozenset({"kl", "kl_synth", "mkl", "mkl_synth", "onset_acc", "onset_ap", "cider_d", "spice", "spider"})
#: metadata keys that make a sample a synthetic-world clip with analytic ground truth.
SYNTHETIC_KEYS = ("source", "onsets", "num_events", "pitch_hz")

PANNS_HINT = ("needs PANNs CNN14 weights (Cnn14_mAP=0.431.pth, zenodo record 3987831): download them on a "
              "machine with network access and set [evaluate] panns_checkpoint")
VGGISH_HINT = ("needs VGGish weights (torchvggish vggish-10086976.pth): download them on a machine with network "
               "access and set [evaluate] vggish_checkpoint")


@attrs.frozen(kw_only=True)
class EvaluateSection:
    """The ``[evaluate]`` section: networks and tools behind the metrics, report size."""

    reference_classifier: ReferenceTrainingConfig = field(
        factory=ReferenceTrainingConfig,
        help="training of the reference classifier behind the *_synth scores (labelled training data)")
    panns_checkpoint: str | None = field(
        None, path=True, help="PANNs CNN14 checkpoint (.pth/.safetensors): enables fd, kl, mkl, isc")
    vggish_checkpoint: str | None = field(
        None, path=True, help="torchvggish checkpoint (.pth/.safetensors): enables fad")
    spice_jar: str | None = field(
        None, path=True, help="spice-1.0.jar (CoreNLP 3.6.0 jars in lib/ beside it): enables spice, spider")
    java: str = field("java", help="Java executable for SPICE")
    isc_splits: int = field(10, validator=in_range(1), help="ISc splits (fewer when a set has fewer clips)")
    num_examples: int = field(3, validator=in_range(0),
                              help="clips per split shown in the report (spectrograms, playable samples)")
    metrics: dict[str, dict[str, Any]] = field(
        factory=dict, help="config overrides per metric, e.g. {synth_audio = {pitch_fmin = 80.0}, cider_d = {sigma = 6.0}}")


# ---------------------------------------------------------------------------------------
# Generation


def expected_outputs(components: dict[str, Any]) -> tuple[list[str], bool]:
    """The generated audio folders and whether captions are expected, from the config's
    components (V2A needs a video encoder, A2T an audio encoder)."""
    folders = ["t2a", "t2a_no_nar", "codec"]
    if "video_encoder" in components:
        folders += ["v2a", "v2a_no_nar", "v2a_pooled"]
    return folders, "audio_encoder" in components


def missing_outputs(gen_dir: Path, ids: Sequence[str], folders: Sequence[str], captions: bool) -> list[str]:
    """What ``gen_dir`` lacks for ``ids``: one line per incomplete output (empty when complete)."""
    missing = []
    for folder in folders:
        count = sum(not (gen_dir / folder / f"{i}.wav").is_file() for i in ids)
        if count:
            missing.append(f"{folder}: {count} of {len(ids)} clips")
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
        missing = missing_outputs(gen_dir, [s.id for s in samples], folders, captions)
        if not missing:
            continue
        log.info("evaluate %s: generated outputs incomplete (%s); generating them", label, "; ".join(missing))
        pipe = pipe or ctx.trained_pipeline()
        generate_for_split(pipe, samples, gen_dir, seed=ctx.config.run.seed, progress=ctx.progress)


# ---------------------------------------------------------------------------------------
# Networks behind the audio metrics


@attrs.define
class AudioNetwork:
    """A network the audio metrics run on; its outputs are cached per clip set."""

    name: str  # synth-classifier | panns-cnn14 | vggish (the metric configs' ``embedder``)
    model: Any
    classifies: bool
    _embeddings: dict[Any, np.ndarray] = attrs.field(factory=dict)
    _logits: dict[Any, np.ndarray] = attrs.field(factory=dict)

    def embed(self, key: Any, audios: Sequence[Audio]) -> np.ndarray:
        if key not in self._embeddings:
            self._embeddings[key] = self.model.embed(list(audios))
        return self._embeddings[key]

    def logits(self, key: Any, audios: Sequence[Audio]) -> np.ndarray:
        if key not in self._logits:
            self._logits[key] = self.model.logits(list(audios))
        return self._logits[key]


def load_audios(paths: Sequence[Path]) -> list[Audio]:
    return [load_audio(p) for p in paths]


def setup_reference_classifier(settings: EvaluateSection, train: Sequence, splits: dict[str, list],
                               references: dict[str, list[Audio]], folder: Path) -> tuple[Any, dict[str, Any]]:
    """Train (or reuse) the reference classifier on the training split's labels.

    :return: the classifier (``None`` when the training data carry no labels) and its record for
        results.json: accuracy on each evaluation split's reference audio (the first split's is
        ``accuracy``), and the training report (its own stratified held-out accuracy).
    """
    from c3llm.scoring.reference_classifier import (
        REPORT_FILE,
        WEIGHTS_FILE,
        ReferenceClassifier,
        train_reference_classifier,
    )

    labels = [s.label for s in train]
    if not train or any(label is None for label in labels) or len(set(labels)) < 2:
        reason = ("the training split has no class labels (sample.label) to train the reference classifier on"
                  if train else "no training split ([data.train]) to train the reference classifier on")
        return None, {"available": False, "reason": reason}
    if (folder / WEIGHTS_FILE).is_file():
        log.info("evaluate: reusing the reference classifier in %s", folder)
        classifier = ReferenceClassifier.from_directory(folder)
        report_file = folder / REPORT_FILE
        training = json.loads(report_file.read_text()) if report_file.is_file() else {}
    else:
        log.info("evaluate: training the reference classifier on %d labelled training clips", len(train))
        classifier, training = train_reference_classifier(
            load_audios([s.audio_path for s in train]), labels, settings.reference_classifier, folder)
    accuracy = {}
    for label, samples in splits.items():
        known = [i for i, s in enumerate(samples) if s.label is not None]
        if known:
            predicted = classifier.predict([references[label][i] for i in known])
            accuracy[label] = float(np.mean([predicted[k] == samples[i].label for k, i in enumerate(known)]))
    first = next(iter(splits))
    info = {"available": True, "path": str(folder), "labels": list(classifier.labels),
            "accuracy": accuracy.get(first), "accuracy_split": first, "accuracy_per_split": accuracy,
            "training": training}
    log.info("evaluate: reference classifier accuracy on %s reference audio: %s", first, accuracy.get(first))
    return classifier, info


def setup_networks(settings: EvaluateSection, classifier: Any) -> tuple[list[AudioNetwork], dict[str, str]]:
    """The audio networks available here, and the audio-network metrics that are not (with why)."""
    from c3llm.scoring.embedders import PannsCnn14, VGGish

    networks, unavailable = [], {}
    if classifier is not None:
        networks.append(AudioNetwork("synth-classifier", classifier, classifies=True))
    else:
        for name in ("fd_synth", "kl_synth", "mkl_synth", "isc_synth"):
            unavailable[name] = "needs the reference classifier, which needs class labels on the training split"
    if settings.panns_checkpoint:
        networks.append(AudioNetwork("panns-cnn14", PannsCnn14.from_checkpoint(settings.panns_checkpoint),
                                     classifies=True))
    else:
        unavailable.update({name: PANNS_HINT for name in ("fd", "kl", "mkl", "isc")})
    if settings.vggish_checkpoint:
        networks.append(AudioNetwork("vggish", VGGish.from_checkpoint(settings.vggish_checkpoint), classifies=False))
    else:
        unavailable["fad"] = VGGISH_HINT
    return networks, unavailable


# ---------------------------------------------------------------------------------------
# Scoring


def synthetic_rows(samples: Sequence) -> list[dict[str, Any]] | None:
    """Metadata rows for the synthetic-world metrics, or ``None`` when the clips lack them."""
    rows = []
    for s in samples:
        meta = dict(s.metadata or {})
        if "source" not in meta and s.label is not None:
            meta["source"] = s.label
        if any(k not in meta for k in SYNTHETIC_KEYS):
            return None
        rows.append(meta)
    return rows


_reported: set[str] = set()


def _attempt(metrics: dict[str, float], unavailable: dict[str, str], names: Sequence[str],
             compute: Callable[[], dict[str, float]]) -> None:
    """Run one metric computation; a metric that cannot run here is recorded with its reason
    (and logged once per reason, not once per system)."""
    try:
        metrics.update({k: float(v) for k, v in compute().items()})
    except (UnavailableError, InputError) as exc:
        for name in names:
            unavailable[name] = str(exc)
        message = f"{'/'.join(names)} not computed: {exc}"
        if message not in _reported:
            _reported.add(message)
            log.warning("evaluate: %s", message)


def isc_splits(configured: int, num_clips: int, min_per_split: int = 2) -> int:
    """ISc splits for a set: as configured, but each split keeps ``min_per_split`` clips (a
    one-clip split scores exactly 1 whatever the audio)."""
    return max(1, min(configured, num_clips // min_per_split))


class Scorer:
    """Computes the metrics of one system's outputs (audio or captions) on one split."""

    def __init__(self, registry, networks: Sequence[AudioNetwork], settings: EvaluateSection,
                 classifier: Any):
        self.registry, self.networks, self.settings, self.classifier = registry, networks, settings, classifier
        known = registry.names("metric")
        for name in settings.metrics:
            if name not in known:
                raise ConfigError(f"evaluate.metrics: unknown metric {name!r}.{did_you_mean(name, known)} "
                                  f"Metrics: {', '.join(known)}")
        #: per-set scores of the metrics that do not depend on the task, by clip-set key
        self._set_scores: dict[Any, tuple[dict[str, float], dict[str, str]]] = {}

    def _metric(self, name: str, **params: Any):
        spec = {"name": name, **params, **self.settings.metrics.get(name, {})}
        return self.registry.build("metric", spec, where=f"evaluate.metrics.{name}")

    def _cached(self, key: Any, metrics: dict[str, float], unavailable: dict[str, str],
                compute: Callable[[dict[str, float], dict[str, str]], None]) -> None:
        """Run ``compute`` once per clip set (the reference and chance sets recur across tasks)."""
        if key not in self._set_scores:
            m: dict[str, float] = {}
            u: dict[str, str] = {}
            compute(m, u)
            self._set_scores[key] = (m, u)
        metrics.update(self._set_scores[key][0])
        unavailable.update(self._set_scores[key][1])

    def _network_metric(self, name: str, network: AudioNetwork, **params: Any):
        metric = self._metric(name, embedder=network.name, **params)
        metric.use_network(network.model)
        return metric

    def audio(self, task: str, key: Any, audios: Sequence[Audio], *, reference_key: Any,
              references: Sequence[Audio], ids: Sequence[str], rows: list[dict] | None,
              ceiling: bool = False) -> tuple[dict[str, float], dict[str, str]]:
        """FD, KL (T2A) / MKL (V2A), ISc for every network; onset acc/AP (V2A); the synthetic-world
        metrics. ``ceiling``: the clips are the references themselves, so only the scores that do
        not compare a clip with itself (ISc, metadata metrics) are computed."""
        metrics: dict[str, float] = {}
        unavailable: dict[str, str] = {}
        n = len(audios)
        for net in self.networks:
            fad = self._network_metric("fad", net)
            if not ceiling:
                _attempt(metrics, unavailable, [fad.key()], lambda: fad.compute_from_embeddings(
                    net.embed(key, audios), net.embed(reference_key, references)))
            if not net.classifies:
                continue
            if not ceiling and task == "t2a":
                kl = self._network_metric("kl", net)
                _attempt(metrics, unavailable, [kl.key("kl")], lambda: kl.compute_from_logits(
                    net.logits(key, audios), net.logits(reference_key, references)))
            if not ceiling and task == "v2a":
                mkl = self._network_metric("mkl", net)
                _attempt(metrics, unavailable, [mkl.key("mkl")], lambda: mkl.compute_grouped_from_logits(
                    net.logits(key, audios), list(ids), net.logits(reference_key, references), list(ids)))
            isc = self._network_metric("isc", net, splits=isc_splits(self.settings.isc_splits, n))
            if n < 2:
                unavailable[isc.key("isc")] = f"ISc needs at least two clips, this set has {n}"
            else:
                _attempt(metrics, unavailable, [isc.key("isc")], lambda: isc.compute_from_logits(net.logits(key, audios)))
        if task == "v2a" and not ceiling:
            onset = self._metric("onset_acc")
            self._cached(("onset", key, reference_key), metrics, unavailable, lambda m, u: _attempt(
                m, u, ["onset_acc", "onset_ap"], lambda: onset.compute(list(audios), list(references))))
        if rows is not None:
            self._cached(("synth_audio", key), metrics, unavailable, lambda m, u: self._synth_audio(m, u, audios, rows))
        return metrics, unavailable

    def _synth_audio(self, metrics: dict[str, float], unavailable: dict[str, str], audios: Sequence[Audio],
                     rows: list[dict]) -> None:
        synth = self._metric("synth_audio", source_accuracy=self.classifier is not None)
        if self.classifier is not None:
            synth.use_network(self.classifier)
        else:
            unavailable["source_acc"] = "needs the reference classifier (class labels on the training split)"
        _attempt(metrics, unavailable, ["source_acc", "onset_f1", "pitch_acc", "event_count_acc"],
                 lambda: synth.compute(list(audios), rows))

    def captions(self, predictions: Sequence[str], references: Sequence[Sequence[str]],
                 rows: list[dict] | None) -> tuple[dict[str, float], dict[str, str]]:
        """CIDEr-D, SPICE/SPIDEr (when the SPICE jar is configured) and the caption attributes."""
        metrics: dict[str, float] = {}
        unavailable: dict[str, str] = {}
        cider = self._metric("cider_d")
        _attempt(metrics, unavailable, ["cider_d"], lambda: cider.compute(list(predictions), list(references)))
        spider = self._metric("spider", spice_jar=self.settings.spice_jar, java=self.settings.java)
        _attempt(metrics, unavailable, ["spice", "spider"],
                 lambda: {k: v for k, v in spider.compute(list(predictions), list(references)).items() if k != "cider_d"})
        if rows is not None:
            synth = self._metric("synth_captions")
            _attempt(metrics, unavailable, ["caption_source_acc", "caption_pitch_acc", "caption_count_acc",
                                            "caption_attribute_acc"], lambda: synth.compute(list(predictions), rows))
        return metrics, unavailable


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
        if not present:
            continue
        log.info("evaluate %s: scoring %s (%s)", label, TASK_LABELS[task], ", ".join(v[1] for v in present.values()))
        out: dict[str, Any] = {}
        for key, (folder, name, kind) in present.items():
            audios = load_audios([gen_dir / folder / f"{i}.wav" for i in ids])
            out[key] = _system(name, kind, f"generated/{label}/{folder}", len(ids), scorer.audio(
                task, (label, task, key), audios, reference_key=ref_key, references=references, ids=ids, rows=rows))
        baseline_kw = dict(reference_key=ref_key, references=references, ids=ids, rows=rows)
        if pool.samples:
            # one draw per split, shared by T2A and V2A (the condition plays no part in it)
            picks = baselines.chance_indices(len(ids), len(pool.samples), baselines.seeded_rng(seed, label, "chance-audio"))
            audios = [baselines.fit_duration(pool.audio(i), r.duration) for i, r in zip(picks, references)]
            audio_baseline(out, task, "chance", "Chance (random training clip)", audios, (label, "chance"), **baseline_kw)
            if task == "t2a":
                prompts = [s.captions[0] if s.captions else "" for s in samples]
                picks = baselines.retrieve_by_caption(prompts, pool.captions,
                                                      baselines.seeded_rng(seed, label, task, "retrieval"))
                audios = [baselines.fit_duration(pool.audio(i), r.duration) for i, r in zip(picks, references)]
                audio_baseline(out, task, "retrieval", "Retrieval (training clip sharing most caption words)", audios,
                               (label, task, "retrieval"), **baseline_kw)
        if "codec" in out:  # listed beside the other ceiling
            out["codec"] = out.pop("codec")
        out["reference"] = _system("Reference audio (ceiling)", "ceiling", "evaluation split", len(ids),
                                   scorer.audio(task, ref_key, references, ceiling=True, **baseline_kw))
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
                        "kl_synth" if task_key == "t2a" else "mkl_synth"}
            tasks[task_key]["unavailable"].update({k: v for k, v in global_unavailable.items() if k in relevant})
            if rows is None:
                tasks[task_key]["unavailable"]["synth_audio"] = "the clips carry no synthetic-world metadata"
    if "a2t" in tasks and rows is None:
        tasks["a2t"]["unavailable"]["synth_captions"] = "the clips carry no synthetic-world metadata"
    return {"num_clips": len(ids), "generated": f"generated/{label}",
            "isc_splits": isc_splits(scorer.settings.isc_splits, len(ids)), "tasks": tasks, "ablations": ablations(tasks),
            "verdict": verdict(tasks)}


def verdict(tasks: dict[str, Any]) -> dict[str, Any]:
    """Per task, the model against its strongest baseline on each conditioned metric.

    :return: task -> {"metrics": [{metric, paper, model, baseline, baseline_value, ahead}],
        "ahead": n, "of": m, "paper_ahead": n, "paper_of": m} (``paper``: one of the paper's metrics).
    """
    out: dict[str, Any] = {}
    for task_key, task in tasks.items():
        systems = task["systems"]
        model = systems.get("c3llm")
        rivals = {k: v for k, v in systems.items() if v["kind"] == "baseline"}
        if model is None or not rivals:
            continue
        rows = []
        for metric in CONDITIONED_METRICS.get(task_key, ()):
            scored = [(v["metrics"][metric], v["label"]) for v in rivals.values() if metric in v["metrics"]]
            if metric not in model["metrics"] or not scored:
                continue
            low = lower_is_better(metric)
            best_value, best_label = (min if low else max)(scored, key=lambda pair: pair[0])
            value = model["metrics"][metric]
            rows.append({"metric": metric, "paper": metric in PAPER_METRICS, "model": value, "baseline": best_label,
                         "baseline_value": best_value, "ahead": bool(value < best_value if low else value > best_value)})
        paper = [r for r in rows if r["paper"]]
        out[task_key] = {"metrics": rows, "ahead": sum(r["ahead"] for r in rows), "of": len(rows),
                         "paper_ahead": sum(r["ahead"] for r in paper), "paper_of": len(paper)}
    return out


def _compare(a: dict[str, float], b: dict[str, float], names: Sequence[str] | None, keys: tuple[str, str]) -> dict:
    common = [k for k in a if k in b and not k.endswith("_std") and (names is None or k in names)]
    return {k: {keys[0]: a[k], keys[1]: b[k], "delta": a[k] - b[k]} for k in common}


def ablations(tasks: dict[str, Any]) -> dict[str, Any]:
    """With vs without the NAR refiner (T2A, V2A); per-frame vs mean-pooled video (V2A sync)."""
    out: dict[str, Any] = {"nar": {}, "video_pooling": {}}
    for task in ("t2a", "v2a"):
        systems = tasks.get(task, {}).get("systems", {})
        if "c3llm" in systems and "c3llm_no_nar" in systems:
            out["nar"][task] = _compare(systems["c3llm"]["metrics"], systems["c3llm_no_nar"]["metrics"], None,
                                        ("with_nar", "without_nar"))
    v2a = tasks.get("v2a", {}).get("systems", {})
    if "c3llm" in v2a and "c3llm_pooled" in v2a:
        out["video_pooling"]["v2a"] = _compare(v2a["c3llm"]["metrics"], v2a["c3llm_pooled"]["metrics"], SYNC_METRICS,
                                               ("per_frame", "mean_pooled"))
    return out


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
    from c3llm.app.evaluation.report import collect_examples, write_report

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
    ensure_generated(ctx, splits)

    train = ctx.train_samples() if ctx.config.data.train is not None else []
    references = {label: load_audios([s.audio_path for s in samples]) for label, samples in splits.items()}
    classifier, classifier_info = setup_reference_classifier(settings, train, splits, references,
                                                             out_dir / "reference_classifier")
    networks, unavailable = setup_networks(settings, classifier)
    scorer = Scorer(ctx.registry, networks, settings, classifier)
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
        "splits": {},
        "unavailable": {},
    }
    codec = None
    if train:
        try:
            codec = ctx.codec().to(ctx.config.run.device).eval()
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
