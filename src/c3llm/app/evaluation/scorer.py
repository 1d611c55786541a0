"""Scores of one system's outputs (audio or captions) on one split, through the metric plugins."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from c3llm.app.evaluation.networks import AudioNetwork, ClapScoring
from c3llm.app.evaluation.settings import EvaluateSection
from c3llm.core.errors import ConfigError, InputError, UnavailableError, did_you_mean
from c3llm.core.media import Audio

log = logging.getLogger(__name__)


#: metadata keys that make a sample a synthetic-world clip with analytic ground truth.
SYNTHETIC_KEYS = ("source", "onsets", "num_events", "pitch_hz")


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
                 classifier: Any, clap: ClapScoring | None = None):
        self.registry, self.networks, self.settings, self.classifier = registry, networks, settings, classifier
        self.clap = clap
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
              ceiling: bool = False, prompts: Sequence[str] | None = None) -> tuple[dict[str, float], dict[str, str]]:
        """FD, KL (T2A) / MKL (V2A), ISc for every network; onset acc/AP (V2A); the synthetic-world
        metrics; the CLAP score against ``prompts`` (T2A, when a CLAP is configured). ``ceiling``:
        the clips are the references themselves, so only the scores that do not compare a clip
        with itself (ISc, metadata metrics, the CLAP score) are computed."""
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
        if task == "t2a" and self.clap is not None and prompts is not None:
            clap = self.clap
            self._cached(("clap", key), metrics, unavailable, lambda m, u: _attempt(
                m, u, [clap.metric], lambda: clap.score(audios, prompts)))
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
