"""Inception score of generated audio from a classifier's softmax (torch-fidelity's recipe,
as audioldm_eval and SpecVQGAN use it).

Rows are shuffled (seeded), cut into ``splits`` contiguous chunks (``i*N//splits`` bounds); per
chunk ``exp(mean_x KL(p(y|x) || p(y)))`` with ``p(y)`` the chunk's mean prediction; reported as
mean and sample standard deviation over chunks. Identical predictions score 1; confident
predictions spread evenly over C classes score C. ``isc_synth`` with the reference classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import attrs
import numpy as np

from c3llm.core.config import field, in_range
from c3llm.core.errors import InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.media import Audio
from c3llm.scoring.network_metric import NetworkMetric, log_softmax


def inception_score(logits: np.ndarray, *, splits: int = 10, shuffle: bool = True,
                    seed: int = 2020) -> tuple[float, float]:
    """Inception score (mean, std over ``splits``) of ``(N, C)`` classifier logits."""
    logits = np.asarray(logits, dtype=np.float64)
    n = logits.shape[0]
    if logits.ndim != 2 or n < splits:
        raise InputError(f"inception score needs (N, C) logits with N >= splits ({splits}); got shape {logits.shape}")
    if shuffle:
        logits = logits[np.random.RandomState(seed).permutation(n)]
    log_p = log_softmax(logits)
    scores = []
    for i in range(splits):
        chunk = log_p[i * n // splits : (i + 1) * n // splits]  # (n_i, C)
        log_py = np.log(np.exp(chunk).mean(axis=0, keepdims=True))  # (1, C)
        kl = (np.exp(chunk) * (chunk - log_py)).sum(axis=1).mean()
        scores.append(float(np.exp(kl)))
    std = float(np.std(scores, ddof=1)) if splits > 1 else 0.0
    return float(np.mean(scores)), std


@attrs.frozen(kw_only=True)
class InceptionScoreConfig:
    embedder: Literal["synth-classifier", "panns-cnn14"] = field(
        "synth-classifier", help="classifier (panns-cnn14 -> isc, synth-classifier -> isc_synth)"
    )
    embedder_path: str | None = field(None, path=True, help="checkpoint or reference-classifier directory")
    splits: int = field(10, validator=in_range(1), help="number of chunks the mean/std are taken over")
    shuffle: bool = field(True, help="shuffle rows before splitting")
    seed: int = field(2020, help="shuffle seed (audioldm_eval uses 2020)")


class InceptionScore(NetworkMetric):
    """``isc`` and ``isc_std`` of generated clips; ``references`` are not used."""

    task: ClassVar[str] = "audio"
    needs: ClassVar[str] = "classifier"
    higher_is_better: ClassVar[dict[str, bool]] = {"isc": True}

    def compute(self, predictions: Sequence[Audio], references: Sequence[Audio] = ()) -> dict[str, float]:
        return self.compute_from_logits(self.network.logits(predictions))

    def compute_from_logits(self, logits: np.ndarray) -> dict[str, float]:
        """Score precomputed ``(N, C)`` logits of generated clips."""
        c = self.config
        mean, std = inception_score(logits, splits=c.splits, shuffle=c.shuffle, seed=c.seed)
        name = self.key("isc")
        return {name: mean, f"{name}_std": std}


@hookimpl
def register_metrics(register):
    register("isc", InceptionScore, InceptionScoreConfig, description="Inception score of classifier softmax, 10 splits")
