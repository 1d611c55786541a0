"""Onset synchronisation metrics of CondFoleyGen (Du et al. 2023, ``predict_onset.py``).

Onsets of generated and ground-truth audio are detected at 22.05 kHz with librosa's algorithm
(:func:`c3llm.scoring.signal.detect_onsets`, ``delta=0.3``). Per clip:

- ``onset_acc``: 1 when the generated clip has as many onsets as the ground truth, else 0.
- ``onset_ap``: generated onsets are thinned by non-maximum suppression (50 ms) on their
  confidence — the peak of the 0–1 normalised ``|wav|`` within ±50 ms; each reference onset is
  matched to the unused generated onset within ±0.1 s with the largest amplitude; matched and
  unmatched generated onsets become scored detections, unmatched reference onsets misses;
  average precision as ``sklearn.metrics.average_precision_score``.
- ``onset_detection_acc``: fraction of reference onsets matched.

All three are averaged over clips. Reference quirks, kept so that scores compare:
NMS removes from the list it iterates (the element after each suppressed one survives).
(The reference also stops once every generated onset is matched, leaving later reference
onsets out; with no false positive left, AP is 1 either way, so this changes nothing.) Deviations, for robustness: windows starting before the
clip are clamped to its start (the reference's negative slice wraps around or is empty); a clip
where either side has no onset scores AP 0 and detection accuracy 0 (the reference gives AP 1
when nothing is generated); a silent clip has confidence 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import numpy as np

from c3llm.core.config import field, in_range
from c3llm.core.errors import InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.media import Audio
from c3llm.core.roles.metric import Metric
from c3llm.scoring.signal import detect_onsets

SAMPLE_RATE = 22050


def average_precision(y_true: Sequence[int], y_score: Sequence[float]) -> float:
    """``sum_k (R_k - R_{k-1}) P_k`` over distinct score thresholds, high to low
    (``sklearn.metrics.average_precision_score``); 0 when there is no positive."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.size == 0 or y_true.sum() == 0:
        return 0.0
    order = np.argsort(-y_score, kind="mergesort")
    y_true, y_score = y_true[order], y_score[order]
    ends = np.r_[np.flatnonzero(np.diff(y_score)), y_true.size - 1]  # last index of each distinct score
    tps = np.cumsum(y_true)[ends]
    fps = (ends + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def normalized_envelope(wav: np.ndarray) -> np.ndarray:
    """``|wav|`` min-max scaled to 0–1 (all zeros for a constant clip)."""
    env = np.abs(np.asarray(wav, dtype=np.float64))
    span = env.max() - env.min() if env.size else 0.0
    return (env - env.min()) / span if span > 0 else np.zeros_like(env)


def window_peak(env: np.ndarray, position: int, half_width: int) -> float:
    """Peak of ``env`` in ``[position - half_width, position + half_width)``, clamped to the clip."""
    segment = env[max(position - half_width, 0) : position + half_width]
    return float(segment.max()) if segment.size else 0.0


def onset_nms(onsets: Sequence[int], confidence: Sequence[float], window: int) -> list[int]:
    """Keep the most confident onsets, suppressing others closer than ``window`` samples.

    Replicates the reference loop, which removes from the list it is iterating (so the onset
    following a suppressed one is skipped in that pass).
    """
    remaining = [int(o) for o in onsets]
    kept = []
    for idx in np.argsort(confidence, kind="stable")[::-1]:
        current = int(onsets[idx])
        if current not in remaining:
            continue
        kept.append(current)
        remaining.remove(current)
        for other in remaining:  # (sic) mutation during iteration, as the reference
            if abs(current - other) < window:
                remaining.remove(other)
    return sorted(kept)


def match_onsets(reference: Sequence[int], generated: Sequence[int], generated_wav: np.ndarray, *,
                 sample_rate: int = SAMPLE_RATE, tolerance: float = 0.1,
                 confidence_window: float = 0.05) -> tuple[float, float]:
    """CondFoleyGen's per-clip evaluation (see module doc), positions in samples.

    :return: (detection accuracy = matched reference onsets / reference onsets, average precision).
    """
    if len(reference) == 0 or len(generated) == 0:
        return 0.0, 0.0
    env = normalized_envelope(generated_wav)
    half = int(confidence_window * sample_rate)
    confidence = [window_peak(env, int(o), half) for o in generated]
    kept = onset_nms(generated, confidence, int(confidence_window * sample_rate))
    unused = list(kept)
    y_true, y_score, hits = [], [], 0
    for ref in reference:
        candidates = [j for j, g in enumerate(unused) if abs(g - int(ref)) < tolerance * sample_rate]
        if not candidates:
            y_true.append(1)
            y_score.append(0.0)
            continue
        best = candidates[int(np.argsort([env[min(unused[j], len(env) - 1)] for j in candidates], kind="stable")[-1])]
        hits += 1
        y_true.append(1)
        y_score.append(window_peak(env, unused[best], half))
        unused.pop(best)
        if not unused:
            break
    for g in unused:
        y_true.append(0)
        y_score.append(window_peak(env, g, half))
    return hits / len(reference), average_precision(y_true, y_score)


@attrs.frozen(kw_only=True)
class OnsetConfig:
    delta: float = field(0.3, validator=in_range(0.0), help="onset peak-picking threshold on the 0-1 envelope")
    tolerance: float = field(0.1, validator=in_range(0.0, low_open=True), help="match window (s) for onset AP")
    confidence_window: float = field(0.05, validator=in_range(0.0, low_open=True), help="half-width (s) of the confidence peak window and NMS")


class OnsetSync(Metric):
    """``onset_acc``, ``onset_ap`` and ``onset_detection_acc`` of generated vs ground-truth audio,
    aligned pairwise (``predictions[i]`` was generated for the video of ``references[i]``)."""

    task: ClassVar[str] = "audio"
    higher_is_better: ClassVar[dict[str, bool]] = {"onset_acc": True, "onset_ap": True, "onset_detection_acc": True}

    def __init__(self, config: OnsetConfig):
        self.config = config

    def waveform(self, audio: Audio) -> np.ndarray:
        if not isinstance(audio, Audio):
            raise InputError(f"onset metrics take c3llm.core.media.Audio clips, got {type(audio).__name__}")
        return audio.to(SAMPLE_RATE, channels=1).waveform[0].double().numpy()

    def compute(self, predictions: Sequence[Audio], references: Sequence[Audio]) -> dict[str, float]:
        if len(predictions) != len(references):
            raise InputError(f"onset metrics: {len(predictions)} generated clips but {len(references)} references")
        gen_wavs = [self.waveform(a) for a in predictions]
        gen = [detect_onsets(w, SAMPLE_RATE, delta=self.config.delta) for w in gen_wavs]
        ref = [detect_onsets(self.waveform(a), SAMPLE_RATE, delta=self.config.delta) for a in references]
        return self.compute_from_onsets(gen, ref, gen_wavs)

    def compute_from_onsets(self, generated: Sequence[Sequence[int]], reference: Sequence[Sequence[int]],
                            generated_wavs: Sequence[np.ndarray]) -> dict[str, float]:
        """Score detected onsets (in samples at 22.05 kHz) with the generated waveforms at that rate."""
        if not (len(generated) == len(reference) == len(generated_wavs)) or not generated:
            raise InputError("onset metrics: need equally many (>0) generated onsets, reference onsets and waveforms")
        c = self.config
        counts, det, aps = [], [], []
        for g, r, w in zip(generated, reference, generated_wavs):
            counts.append(float(len(g) == len(r)))
            acc, ap = match_onsets(r, g, w, tolerance=c.tolerance, confidence_window=c.confidence_window)
            det.append(acc)
            aps.append(ap)
        return {"onset_acc": float(np.mean(counts)), "onset_ap": float(np.mean(aps)),
                "onset_detection_acc": float(np.mean(det))}


@hookimpl
def register_metrics(register):
    # One computation gives both scores; each paper name is registered so configs can use either.
    register("onset_acc", OnsetSync, OnsetConfig, description="CondFoleyGen onset accuracy (+ onset AP)")
    register("onset_ap", OnsetSync, OnsetConfig, description="CondFoleyGen onset AP (+ onset accuracy)")
