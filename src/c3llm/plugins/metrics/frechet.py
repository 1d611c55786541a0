"""Fréchet (audio) distance between embedding distributions of generated and reference audio.

``FD = ||mu_1 - mu_2||² + Tr S_1 + Tr S_2 - 2 Tr sqrt(S_1 S_2)``, Gaussians fitted to embedding
rows. ``Tr sqrt(S_1 S_2)`` is computed either with ``scipy.linalg.sqrtm`` (as pytorch-fid and
the FAD tools) or from eigenvalues of the symmetric ``sqrt(S_1) S_2 sqrt(S_1)``, which has the
same spectrum. The estimate is biased upward at small N; ``fad_inf`` extrapolates it to
N -> infinity (Jayasumana et al. 2024, as fadtk's FAD-inf).

Score names follow the network: ``fad`` (VGGish, the original FAD), ``fd`` (PANNs CNN14, as
audioldm_eval), ``fd_clap``, ``fd_synth`` (the synthetic world's reference classifier).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar, Literal

import attrs
import numpy as np

from c3llm.core.config import field, in_range
from c3llm.core.errors import InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.media import Audio
from c3llm.scoring.embedders import VGGish
from c3llm.scoring.network_metric import NetworkMetric

log = logging.getLogger(__name__)


def gaussian_stats(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of embedding rows ``(M, D)``."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] < 2:
        raise InputError(f"need at least two embedding rows (M, D) to fit a Gaussian, got shape {rows.shape}")
    return rows.mean(axis=0), np.cov(rows, rowvar=False)


def trace_sqrt_product_scipy(sigma1: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """``Tr sqrt(S_1 S_2)`` via ``scipy.linalg.sqrtm``; offsets the diagonals by ``eps`` when the
    product is singular, and drops a negligible imaginary part (pytorch-fid's recipe)."""
    from scipy import linalg

    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        log.warning("Fréchet distance: singular product; adding %g to the covariance diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if imag > 1e-3 * max(1.0, np.abs(np.trace(covmean.real))):
            raise InputError(f"Fréchet distance: matrix square root has a large imaginary part ({imag:.3g})")
        covmean = covmean.real
    return float(np.trace(covmean))


def trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr sqrt(S_1 S_2)`` as the sum of square roots of the eigenvalues of the symmetric PSD
    ``sqrt(S_1) S_2 sqrt(S_1)`` (similar to ``S_1 S_2``); round-off negatives are clipped to 0."""
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     *, method: Literal["scipy", "eigh"] = "scipy") -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise InputError(
            f"Fréchet distance: shapes disagree: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    if method == "scipy":
        tr_sqrt = trace_sqrt_product_scipy(sigma1, sigma2)
    elif method == "eigh":
        tr_sqrt = trace_sqrt_product_eigh(sigma1, sigma2)
    else:
        raise InputError(f"unknown matrix square-root method {method!r}; use 'scipy' or 'eigh'")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_sqrt)


def frechet_distance_from_embeddings(generated: np.ndarray, reference: np.ndarray, *,
                                     method: Literal["scipy", "eigh"] = "scipy") -> float:
    """Fréchet distance between Gaussians fitted to two sets of embedding rows."""
    return frechet_distance(*gaussian_stats(generated), *gaussian_stats(reference), method=method)


def fad_infinity(generated: np.ndarray, reference: np.ndarray, *, num_points: int = 15,
                 min_rows: int | None = None, seed: int = 0,
                 method: Literal["scipy", "eigh"] = "scipy") -> tuple[float, list[tuple[int, float]]]:
    """FD extrapolated to infinitely many generated rows.

    FD is computed on random subsets of ``n`` generated rows for ``num_points`` values of ``n``
    spaced between ``min_rows`` and all of them, against the full reference statistics; a line
    ``FD(n) = a + b / n`` is fitted and ``a`` returned with the measured ``(n, FD)`` points.
    """
    generated = np.asarray(generated, dtype=np.float64)
    total = generated.shape[0]
    min_rows = min_rows or max(2, total // 4)
    if total < 3 or min_rows >= total:
        raise InputError(f"fad_inf needs more generated rows than min_rows ({min_rows}); got {total}")
    mu_r, sigma_r = gaussian_stats(reference)
    rng = np.random.default_rng(seed)
    points = []
    for n in np.unique(np.linspace(min_rows, total, num_points).astype(int)):
        subset = generated[rng.choice(total, size=n, replace=False)]
        points.append((int(n), frechet_distance(*gaussian_stats(subset), mu_r, sigma_r, method=method)))
    xs = np.array([1.0 / n for n, _ in points])
    ys = np.array([fd for _, fd in points])
    _slope, intercept = np.polyfit(xs, ys, 1)
    return float(intercept), points


@attrs.frozen(kw_only=True)
class FrechetConfig:
    embedder: Literal["synth-classifier", "panns-cnn14", "vggish", "clap"] = field(
        "synth-classifier", help="network whose embeddings are compared; names the score (fd_synth, fd, fad, fd_clap)"
    )
    embedder_path: str | None = field(
        None, path=True, help="checkpoint (.pth/.safetensors) or reference-classifier directory"
    )
    sqrt_method: Literal["scipy", "eigh"] = field("scipy", help="route for Tr sqrt(S1 S2)")
    fad_inf: bool = field(False, help="also report the N -> infinity extrapolation (<name>_inf)")
    fad_inf_points: int = field(15, validator=in_range(2), help="subset sizes used by fad_inf")
    seed: int = field(0, help="subset sampling seed for fad_inf")


class FrechetDistance(NetworkMetric):
    """Fréchet distance between embeddings of generated and reference audio (a set metric:
    ``predictions`` and ``references`` need not be paired or of equal length)."""

    task: ClassVar[str] = "audio"
    needs: ClassVar[str] = "embedder"
    higher_is_better: ClassVar[dict[str, bool]] = {"fad": False, "fd": False}

    def key(self, base: str = "fd") -> str:
        return super().key("fad" if isinstance(self.network, VGGish) else base)

    def compute(self, predictions: Sequence[Audio], references: Sequence[Audio]) -> dict[str, float]:
        return self.compute_from_embeddings(self.network.embed(predictions), self.network.embed(references))

    def compute_from_embeddings(self, generated: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        """Score precomputed embedding rows ``(M, D)`` of generated and reference audio."""
        name = self.key()
        out = {name: frechet_distance_from_embeddings(generated, reference, method=self.config.sqrt_method)}
        if self.config.fad_inf:
            out[f"{name}_inf"], _ = fad_infinity(generated, reference, num_points=self.config.fad_inf_points,
                                                  seed=self.config.seed, method=self.config.sqrt_method)
        return out


@hookimpl
def register_metrics(register):
    register("fad", FrechetDistance, FrechetConfig,
             description="Fréchet audio distance (VGGish: fad; PANNs: fd; CLAP: fd_clap; synthetic: fd_synth)")
