"""KL divergence between classifier predictions on reference and generated audio.

``kl`` (T2A, audioldm_eval): softmax over classifier logits, ``KL(p_ref || p_gen)`` per aligned
pair, averaged over pairs. ``mkl`` (V2A, SpecVQGAN): the same divergence where every generated
sample is compared with the ground truth of *its own video*, averaged over all generated samples;
several samples per video are allowed (grouping by video id). Scores computed with the synthetic
world's reference classifier are named ``kl_synth`` / ``mkl_synth``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import ClassVar, Literal

import attrs
import numpy as np

from c3llm.core.config import field
from c3llm.core.errors import InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.media import Audio
from c3llm.scoring.network_metric import NetworkMetric, log_softmax


def kl_per_pair(reference_logits: np.ndarray, generated_logits: np.ndarray) -> np.ndarray:
    """``KL(softmax(ref_i) || softmax(gen_i))`` for each row pair ``i``: ``(N,)``."""
    ref, gen = np.atleast_2d(reference_logits), np.atleast_2d(generated_logits)
    if ref.shape != gen.shape:
        raise InputError(f"KL: reference logits {ref.shape} and generated logits {gen.shape} differ in shape")
    log_p, log_q = log_softmax(ref), log_softmax(gen)
    return (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)


def mean_kl(reference_logits: np.ndarray, generated_logits: np.ndarray) -> float:
    """KL averaged over aligned pairs."""
    if len(reference_logits) == 0:
        raise InputError("KL: no pairs to score")
    return float(kl_per_pair(reference_logits, generated_logits).mean())


def grouped_kl(generated_logits: np.ndarray, generated_ids: Sequence[Hashable],
               reference_logits: np.ndarray, reference_ids: Sequence[Hashable]) -> float:
    """MKL: each generated row against the reference row of the same id, averaged over all
    generated rows. Reference ids must be unique; every generated id needs a reference."""
    if len(generated_logits) != len(generated_ids) or len(reference_logits) != len(reference_ids):
        raise InputError("MKL: every logits row needs an id (lengths differ)")
    index: dict[Hashable, int] = {}
    for i, rid in enumerate(reference_ids):
        if rid in index:
            raise InputError(f"MKL: reference id {rid!r} appears twice; give one ground truth per video")
        index[rid] = i
    missing = sorted({str(g) for g in generated_ids if g not in index})
    if missing:
        raise InputError(f"MKL: no ground truth for video id(s) {missing[:5]}")
    rows = np.array([index[g] for g in generated_ids], dtype=int)
    return mean_kl(np.asarray(reference_logits)[rows], np.asarray(generated_logits))


@attrs.frozen(kw_only=True)
class KLConfig:
    embedder: Literal["synth-classifier", "panns-cnn14"] = field(
        "synth-classifier", help="classifier whose softmax is compared (panns-cnn14 -> kl/mkl, synth -> kl_synth)"
    )
    embedder_path: str | None = field(None, path=True, help="checkpoint or reference-classifier directory")


class KLDivergence(NetworkMetric):
    """``kl``: KL(reference || generated) of classifier softmax, per aligned pair, averaged."""

    task: ClassVar[str] = "audio"
    needs: ClassVar[str] = "classifier"
    base_name: ClassVar[str] = "kl"
    higher_is_better: ClassVar[dict[str, bool]] = {"kl": False}

    def compute(self, predictions: Sequence[Audio], references: Sequence[Audio]) -> dict[str, float]:
        if len(predictions) != len(references):
            raise InputError(f"{self.base_name}: {len(predictions)} generated clips but {len(references)} references")
        return self.compute_from_logits(self.network.logits(predictions), self.network.logits(references))

    def compute_from_logits(self, generated_logits: np.ndarray, reference_logits: np.ndarray) -> dict[str, float]:
        """Score precomputed ``(N, C)`` logits of aligned generated and reference clips."""
        return {self.key(self.base_name): mean_kl(reference_logits, generated_logits)}


class MeanKLDivergence(KLDivergence):
    """``mkl``: each generated clip against the ground truth of its own video.

    :meth:`compute` takes aligned lists (``references[i]`` is the ground truth of the video
    ``predictions[i]`` was generated from; a reference may repeat). :meth:`compute_grouped` takes
    video ids, so each ground truth is classified once however many samples it has.
    """

    base_name: ClassVar[str] = "mkl"
    higher_is_better: ClassVar[dict[str, bool]] = {"mkl": False}

    def compute_grouped(self, predictions: Sequence[Audio], prediction_ids: Sequence[Hashable],
                        references: Mapping[Hashable, Audio]) -> dict[str, float]:
        ids = list(references)
        return self.compute_grouped_from_logits(
            self.network.logits(predictions), prediction_ids,
            self.network.logits([references[i] for i in ids]), ids,
        )

    def compute_grouped_from_logits(self, generated_logits: np.ndarray, generated_ids: Sequence[Hashable],
                                    reference_logits: np.ndarray, reference_ids: Sequence[Hashable]) -> dict[str, float]:
        """Score precomputed logits with video ids (see :func:`grouped_kl`)."""
        return {self.key(self.base_name): grouped_kl(generated_logits, generated_ids, reference_logits, reference_ids)}


@hookimpl
def register_metrics(register):
    register("kl", KLDivergence, KLConfig, description="KL(reference || generated) of classifier softmax, per pair (T2A)")
    register("mkl", MeanKLDivergence, KLConfig, description="KL of each generated clip vs its own video's ground truth (V2A)")
