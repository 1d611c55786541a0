"""Onset detection (librosa-equivalent), CondFoleyGen onset accuracy/AP, pitch estimation."""

from __future__ import annotations

import numpy as np
import pytest
from metric_helpers import audio, click_train

from c3llm.plugins.metrics.onset import (
    OnsetConfig,
    OnsetSync,
    average_precision,
    match_onsets,
    onset_nms,
)
from c3llm.scoring.signal import detect_onsets, estimate_pitch, mel_filterbank

SR = 22050


def test_detects_clicks_within_20_ms():
    times = [0.15, 0.55, 0.9, 1.4]
    found = detect_onsets(click_train(times), SR, delta=0.3, hop_length=256, n_fft=1024) / SR
    assert len(found) == len(times)
    assert np.max(np.abs(found - times)) < 0.02
    # librosa's defaults (hop 512 = 23 ms frames), as CondFoleyGen: same clicks, coarser times.
    coarse = detect_onsets(click_train(times), SR, delta=0.3) / SR
    assert len(coarse) == len(times) and np.max(np.abs(coarse - times)) < 0.035


def test_matches_librosa_reference_values():
    # librosa 0.11 on this exact signal (seed 0) gave onsets [2560 11776 20480 29184] samples.
    y = np.random.default_rng(0).normal(0, 0.01, int(2 * SR)).astype(np.float32)
    rng = np.random.default_rng(0)
    rng.normal(0, 0.01, int(2 * SR))
    for t in [0.1, 0.5, 0.9, 1.3]:
        i, n = int(t * SR), 600
        y[i : i + n] += (np.exp(-np.arange(n) / 120) * rng.normal(0, 1, n)).astype(np.float32) * 0.8
    assert detect_onsets(y, SR, delta=0.3).tolist() == [2560, 11776, 20480, 29184]


def test_slaney_mel_filterbank_properties():
    fb = mel_filterbank(32000, 1024, 64, 50, 14000)
    assert fb.shape == (64, 513) and (fb >= 0).all()
    assert (fb.sum(1) > 0).all()  # no empty band


def test_average_precision_matches_sklearn_definition():
    # sklearn 1.9.1: average_precision_score([1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.3, 0.3]) = 0.75555...
    assert average_precision([1, 0, 1, 1, 0], [0.9, 0.8, 0.7, 0.3, 0.3]) == pytest.approx(0.75555556)
    assert average_precision([1, 1], [0.2, 0.1]) == 1.0
    assert average_precision([0, 0], [0.2, 0.1]) == 0.0


def test_nms_keeps_reference_quirk():
    # Sorted by confidence: 100 kept; 110 and 120 both within the window, but removing 110
    # while iterating skips 120, which survives (as in CondFoleyGen's loop).
    assert onset_nms([100, 110, 120], [0.9, 0.5, 0.4], window=50) == [100, 120]


def test_onset_ap_on_jittered_and_spurious_clicks():
    ref_times = [0.2, 0.6, 1.0, 1.4]
    gen_times = [0.23, 0.64, 0.97, 1.43]  # 30-40 ms jitter
    ref = (np.array(ref_times) * SR).astype(int)
    wav = click_train(gen_times, seed=1)
    gen = detect_onsets(wav, SR)
    acc, ap = match_onsets(ref, gen, wav)
    assert acc == 1.0 and ap == 1.0
    # A quieter spurious click far from every reference onset is a false positive ranked last.
    wav2 = click_train(gen_times, seed=1) + click_train([1.8], seed=2, noise=0.0, amplitude=0.2)
    gen2 = detect_onsets(wav2, SR)
    assert len(gen2) == 5
    acc2, ap2 = match_onsets(ref, gen2, wav2)
    assert acc2 == 1.0 and ap2 == pytest.approx(1.0)  # ranked below all true hits
    # A loud spurious click ranks above the hits -> AP drops.
    wav3 = click_train(gen_times, seed=1, amplitude=0.3) + click_train([1.8], seed=2, noise=0.0, amplitude=0.9)
    acc3, ap3 = match_onsets(ref, detect_onsets(wav3, SR), wav3)
    assert acc3 == 1.0 and ap3 < 1.0
    # Outside the +-0.1 s window nothing matches.
    far = click_train([t + 0.15 for t in ref_times], seed=3)
    acc4, ap4 = match_onsets(ref, detect_onsets(far, SR), far)
    assert acc4 == 0.0 and ap4 < 0.6


def test_empty_onset_edge_cases_and_window_at_clip_start():
    wav = click_train([0.0, 0.5], seed=4)
    assert match_onsets([], [100], wav) == (0.0, 0.0)
    assert match_onsets([100], [], wav) == (0.0, 0.0)
    acc, ap = match_onsets([0, int(0.5 * SR)], [0, int(0.5 * SR)], wav)  # onset at sample 0: window clamped
    assert acc == 1.0 and ap == 1.0


def test_onset_metric_end_to_end():
    metric = OnsetSync(OnsetConfig())
    ref = [audio(click_train([0.2, 0.8, 1.5], seed=5), SR), audio(click_train([0.4, 1.2], seed=6), SR)]
    gen = [audio(click_train([0.22, 0.83, 1.52], seed=7), SR), audio(click_train([0.4], seed=8), SR)]
    out = metric.compute(gen, ref)
    assert out["onset_acc"] == pytest.approx(0.5)  # counts agree for the first clip only
    assert out["onset_ap"] == pytest.approx(1.0)  # no false positive in either clip
    assert out["onset_detection_acc"] == pytest.approx((1 + 0.5) / 2)


@pytest.mark.parametrize("freq", [110.0, 440.0, 1500.0])
def test_pitch_estimate(freq):
    t = np.arange(16000) / 16000
    y = 0.5 * np.sin(2 * np.pi * freq * t) + 0.25 * np.sin(2 * np.pi * 2 * freq * t)
    assert abs(12 * np.log2(estimate_pitch(y, 16000) / freq)) < 0.2
    assert estimate_pitch(np.random.default_rng(0).normal(size=16000), 16000) is None
