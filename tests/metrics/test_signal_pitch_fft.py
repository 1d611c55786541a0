"""The FFT difference function of ``estimate_pitch`` equals YIN's direct definition."""

import numpy as np

from c3llm.scoring.signal import estimate_pitch


def test_fft_difference_function_matches_direct_sum():
    rng = np.random.default_rng(0)
    frame, lags = 64, 40
    x = rng.standard_normal(2 * frame)
    direct = np.array([np.sum((x[:frame] - x[t:t + frame]) ** 2) for t in range(lags)])
    n_fft = 256
    cross = np.fft.irfft(np.fft.rfft(x, n_fft) * np.conj(np.fft.rfft(x[:frame], n_fft)), n_fft)[:lags]
    squares = np.concatenate([[0.0], np.cumsum(x ** 2)])
    fast = squares[frame] + (squares[frame:frame + lags] - squares[:lags]) - 2 * cross
    np.testing.assert_allclose(fast, direct, rtol=1e-9, atol=1e-9)


def test_pitch_of_tones():
    sr = 16000
    t = np.arange(sr) / sr
    for f0 in (110.0, 440.0, 1760.0):
        y = np.sin(2 * np.pi * f0 * t) + 0.3 * np.sin(2 * np.pi * 2 * f0 * t)
        assert abs(estimate_pitch(y, sr) - f0) / f0 < 0.01
    assert estimate_pitch(np.zeros(sr), sr) is None  # digital silence
