"""Fréchet distance, KL/MKL and Inception score against closed-form values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from c3llm.core.errors import InputError, UnavailableError
from c3llm.plugins.metrics.frechet import (
    FrechetConfig,
    FrechetDistance,
    fad_infinity,
    frechet_distance,
    frechet_distance_from_embeddings,
    trace_sqrt_product_eigh,
    trace_sqrt_product_scipy,
)
from c3llm.plugins.metrics.inception_score import (
    InceptionScore,
    InceptionScoreConfig,
    inception_score,
)
from c3llm.plugins.metrics.kl import (
    KLConfig,
    MeanKLDivergence,
    grouped_kl,
    kl_per_pair,
    mean_kl,
)


def random_spd(d, rng):
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d) * 0.1


def test_frechet_closed_form_diagonal_gaussians():
    # For diagonal covariances FD = |mu1-mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    for method in ("scipy", "eigh"):
        assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2), method=method) == pytest.approx(expected)


def test_sqrt_routes_agree_on_full_covariances():
    rng = np.random.default_rng(0)
    s1, s2 = random_spd(16, rng), random_spd(16, rng)
    assert trace_sqrt_product_eigh(s1, s2) == pytest.approx(trace_sqrt_product_scipy(s1, s2), rel=1e-8)
    assert frechet_distance(np.zeros(16), s1, np.ones(16), s2, method="eigh") == pytest.approx(
        frechet_distance(np.zeros(16), s1, np.ones(16), s2, method="scipy"), rel=1e-8)


def test_frechet_from_samples_approaches_exact_value_and_is_zero_for_same_set():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(20000, 4))
    b = rng.normal(0.5, 2.0, size=(20000, 4))
    exact = 4 * 0.25 + 4 * (1 - 2) ** 2  # |mu|^2 + sum (sqrt1 - sqrt4)^2
    assert frechet_distance_from_embeddings(a, b) == pytest.approx(exact, rel=0.03)
    assert frechet_distance_from_embeddings(a, a) == pytest.approx(0.0, abs=1e-8)


def test_fad_infinity_removes_small_sample_bias():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(20000, 32))
    gen = rng.normal(0.5, 1.0, size=(1200, 32))  # true FD = 32 * 0.25 = 8
    fd_all = frechet_distance_from_embeddings(gen, ref)
    fd_inf, points = fad_infinity(gen, ref, num_points=8, min_rows=100)
    assert len(points) == 8 and points[0][0] == 100 and points[-1][0] == 1200
    assert points[0][1] > fd_all > 8.0  # biased upward, more so at small N
    # the 1/n fit removes the bias of small subsets (what is left is the sampling noise of `gen`)
    assert abs(fd_inf - 8.0) < abs(fd_all - 8.0) and abs(fd_inf - 8.0) < 0.3 < points[0][1] - 8.0


def test_frechet_metric_names_scores_after_the_network():
    metric = FrechetDistance(FrechetConfig(fad_inf=True, fad_inf_points=4))

    class Synth:
        score_suffix = "synth"

        def embed(self, audios):
            raise AssertionError("not used")

    metric.use_network(Synth())
    rng = np.random.default_rng(3)
    out = metric.compute_from_embeddings(rng.normal(size=(64, 3)), rng.normal(size=(64, 3)))
    assert set(out) == {"fd_synth", "fd_synth_inf"}


def test_unconfigured_networks_raise_unavailable():
    with pytest.raises(UnavailableError, match="train_reference_classifier"):
        FrechetDistance(FrechetConfig()).network
    with pytest.raises(UnavailableError, match="zenodo"):
        FrechetDistance(FrechetConfig(embedder="panns-cnn14", embedder_path="/nonexistent/Cnn14.pth")).network
    with pytest.raises(UnavailableError, match="EncoderEmbedder"):
        FrechetDistance(FrechetConfig(embedder="clap")).network


def test_kl_zero_for_identical_and_hand_computed_pair():
    logits = np.random.default_rng(4).normal(size=(5, 7))
    assert np.allclose(kl_per_pair(logits, logits), 0.0)
    # p = softmax([0, ln 3]) = (1/4, 3/4), q = softmax([0, 0]) = (1/2, 1/2)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    ref, gen = np.array([[0.0, math.log(3)]]), np.array([[0.0, 0.0]])
    assert mean_kl(ref, gen) == pytest.approx(expected)
    assert mean_kl(gen, ref) != pytest.approx(expected)  # KL(reference || generated), not the reverse


def test_mkl_groups_generated_samples_by_video():
    ln3 = math.log(3)
    ref_logits = np.array([[0.0, ln3], [0.0, 0.0]])  # videos "a" (1/4, 3/4) and "b" (1/2, 1/2)
    gen_logits = np.array([[0.0, ln3], [0.0, 0.0], [0.0, 0.0]])
    gen_ids = ["a", "a", "b"]
    kl_a = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert grouped_kl(gen_logits, gen_ids, ref_logits, ["a", "b"]) == pytest.approx((0 + kl_a + 0) / 3)
    with pytest.raises(InputError, match="no ground truth"):
        grouped_kl(gen_logits, ["a", "a", "c"], ref_logits, ["a", "b"])
    with pytest.raises(InputError, match="twice"):
        grouped_kl(gen_logits, gen_ids, ref_logits, ["a", "a"])

    class Synth:
        score_suffix = "synth"
        labels = ("x", "y")

        def logits(self, audios):
            raise AssertionError("not used")

    metric = MeanKLDivergence(KLConfig())
    metric.use_network(Synth())
    assert metric.compute_grouped_from_logits(gen_logits, gen_ids, ref_logits, ["a", "b"]) == {
        "mkl_synth": pytest.approx((0 + kl_a + 0) / 3)
    }


def test_inception_score_limits():
    same = np.tile(np.array([[3.0, 1.0, -2.0]]), (100, 1))
    mean, std = inception_score(same)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-9)
    c = 5
    confident = np.tile(np.eye(c) * 60.0, (40, 1))  # one-hot-like, equally many per class
    mean, _ = inception_score(confident, splits=10, shuffle=False)
    assert mean == pytest.approx(c, rel=1e-6)
    metric = InceptionScore(InceptionScoreConfig(shuffle=False))

    class Panns:
        score_suffix = ""
        labels = None

        def logits(self, audios):
            raise AssertionError("not used")

    metric.use_network(Panns())
    assert set(metric.compute_from_logits(confident)) == {"isc", "isc_std"}
    with pytest.raises(InputError, match="splits"):
        inception_score(confident[:5])
