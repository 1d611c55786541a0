"""Signal analysis for evaluation: mel filterbanks, onset detection, pitch estimation.

Onset detection reimplements ``librosa.onset.onset_detect`` (librosa 0.10/0.11 defaults) in
numpy/scipy so the core does not pull numba and llvmlite: spectral flux on a dB-scaled
128-band Slaney mel power spectrogram (``onset_strength``), the envelope shifted and scaled to
0–1, then librosa's ``peak_pick`` with its default windows (30 ms pre-max, 100 ms averages,
30 ms wait) and the threshold ``delta`` (CondFoleyGen evaluates with ``delta=0.3``).
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import scipy.signal

from c3llm.core.errors import InputError

# ---------------------------------------------------------------------------------------
# Mel scale and filterbanks


def hz_to_mel(freqs: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Hz -> mel; Slaney's scale (linear below 1 kHz, log above) unless ``htk``."""
    freqs = np.asanyarray(freqs, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + freqs / 700.0)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    mels = freqs / f_sp
    return np.where(
        freqs >= min_log_hz,
        min_log_mel + np.log(np.maximum(freqs, 1e-10) / min_log_hz) / logstep,
        mels,
    )


def mel_to_hz(mels: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
    *, htk: bool = False, slaney_norm: bool = True,
) -> np.ndarray:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)``, as ``librosa.filters.mel``."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_points = mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2), htk=htk)
    fdiff = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]  # (n_mels + 2, F)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))  # (n_mels, F)
    if slaney_norm:
        weights *= (2.0 / (mel_points[2 : n_mels + 2] - mel_points[:n_mels]))[:, None]
    return weights


def power_spectrogram(y: np.ndarray, n_fft: int, hop_length: int, *, center: bool = True) -> np.ndarray:
    """``|STFT|²`` with a periodic Hann window, zero-padded by ``n_fft // 2`` when centred
    (librosa >= 0.10 pads with zeros). :return: ``(n_fft // 2 + 1, frames)``."""
    y = np.asarray(y, dtype=np.float64)
    if center:
        y = np.pad(y, n_fft // 2, mode="constant")
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length]  # (frames, n_fft)
    return (np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2).T


def power_to_db(power: np.ndarray, *, amin: float = 1e-10, top_db: float | None = 80.0) -> np.ndarray:
    """``10 log10(max(amin, S))`` clipped to ``top_db`` below the peak (``librosa.power_to_db``)."""
    db = 10.0 * np.log10(np.maximum(amin, power))
    if top_db is not None:
        db = np.maximum(db, db.max() - top_db)
    return db


# ---------------------------------------------------------------------------------------
# Onsets


def onset_strength(y: np.ndarray, sample_rate: int, *, n_fft: int = 2048, hop_length: int = 512,
                   n_mels: int = 128) -> np.ndarray:
    """Spectral-flux onset envelope ``(frames,)`` as ``librosa.onset.onset_strength``.

    Mean over mel bands of the positive first difference of the dB mel spectrogram, delayed
    by ``1 + n_fft // (2 * hop_length)`` frames to undo the centring of the frames.
    """
    mel = mel_filterbank(sample_rate, n_fft, n_mels) @ power_spectrogram(y, n_fft, hop_length)
    db = power_to_db(mel)  # (n_mels, frames)
    flux = np.maximum(0.0, db[:, 1:] - db[:, :-1]).mean(axis=0)
    delay = 1 + n_fft // (2 * hop_length)
    return np.pad(flux, (delay, 0))[: db.shape[1]]


def peak_pick(x: np.ndarray, *, pre_max: int, post_max: int, pre_avg: int, post_avg: int,
              delta: float, wait: int) -> np.ndarray:
    """Indices of peaks of ``x`` as ``librosa.util.peak_pick``.

    A sample is a peak when it is the maximum of ``x[n - pre_max : n + post_max]``, is at least
    ``delta`` above the mean of ``x[n - pre_avg : n + post_avg]`` (windows truncated at the
    edges), and comes more than ``wait`` samples after the previous peak.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return np.zeros(0, dtype=int)
    max_len = pre_max + post_max
    mov_max = scipy.ndimage.maximum_filter1d(
        x, max_len, mode="constant", origin=int(np.ceil(0.5 * (pre_max - post_max))), cval=x.min()
    )
    mov_avg = scipy.ndimage.uniform_filter1d(
        x, pre_avg + post_avg, mode="nearest", origin=int(np.ceil(0.5 * (pre_avg - post_avg)))
    )
    # The filter cannot truncate its window at the edges: recompute those means explicitly.
    n = len(x)
    for i in list(range(min(pre_avg, n))) + list(range(max(n - post_avg, 0), n)):
        mov_avg[i] = x[max(i - pre_avg, 0) : i + post_avg].mean()
    detections = x * (x == mov_max)
    detections = detections * (detections >= mov_avg + delta)
    peaks, last = [], -np.inf
    for i in np.flatnonzero(detections):
        if i > last + wait:
            peaks.append(i)
            last = i
    return np.asarray(peaks, dtype=int)


def detect_onsets(y: np.ndarray, sample_rate: int, *, delta: float = 0.3, hop_length: int = 512,
                  n_fft: int = 2048, n_mels: int = 128) -> np.ndarray:
    """Onset positions in **samples**, as ``librosa.onset.onset_detect(y, sr, units="samples")``.

    :param y: mono waveform ``(T,)``.
    :param delta: peak-picking threshold on the 0–1 normalised envelope (CondFoleyGen: 0.3).
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise InputError(f"detect_onsets expects a mono waveform (T,), got shape {y.shape}; average the channels first")
    env = onset_strength(y, sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    env = env - env.min()
    env = env / (env.max() + np.finfo(env.dtype).tiny)
    if not env.any() or not np.isfinite(env).all():
        return np.zeros(0, dtype=int)
    def win(seconds: float) -> int:
        return int(np.ceil(seconds * sample_rate // hop_length))

    peaks = peak_pick(env, pre_max=win(0.03), post_max=win(0.0) + 1, pre_avg=win(0.10),
                      post_avg=win(0.10) + 1, delta=delta, wait=win(0.03))
    return peaks * hop_length


# ---------------------------------------------------------------------------------------
# Pitch


def estimate_pitch(y: np.ndarray, sample_rate: int, *, fmin: float = 60.0, fmax: float = 4000.0,
                   frame_seconds: float = 0.04, threshold: float = 0.15,
                   silence_db: float = -40.0) -> float | None:
    """Median fundamental frequency (Hz) over the voiced frames of ``y``, by YIN.

    Frames quieter than ``silence_db`` below the loudest frame are ignored; a frame is voiced
    when the cumulative-mean-normalised difference dips under ``threshold``. The lag is refined
    by parabolic interpolation.

    :return: f0 in Hz, or ``None`` when no frame is voiced (noise, silence).
    """
    y = np.asarray(y, dtype=np.float64)
    frame = int(round(frame_seconds * sample_rate))
    max_lag = min(int(sample_rate / fmin), frame - 1)
    min_lag = max(int(sample_rate / fmax), 2)
    if y.ndim != 1 or len(y) < 2 * frame or max_lag <= min_lag:
        return None
    hop = frame // 2
    frames = np.lib.stride_tricks.sliding_window_view(y, 2 * frame)[::hop]  # (N, 2W)
    energy = 10 * np.log10(np.mean(frames[:, :frame] ** 2, axis=1) + 1e-12)
    frames = frames[energy >= energy.max() + silence_db]
    if len(frames) == 0 or energy.max() < -100.0:  # digital silence has no pitch
        return None
    # Difference function d(tau) = sum_j (x_j - x_{j+tau})^2 over a window of `frame`, for all
    # frames at once: |ref|^2 + |shifted|^2 - 2 * cross-correlation (the latter by FFT).
    lags = max_lag + 2
    ref = frames[:, :frame]  # (N, W)
    n_fft = 1 << int(np.ceil(np.log2(3 * frame)))
    spectrum = np.fft.rfft(frames, n_fft, axis=1) * np.conj(np.fft.rfft(ref, n_fft, axis=1))
    cross = np.fft.irfft(spectrum, n_fft, axis=1)[:, :lags]  # (N, lags): sum_j ref_j x_{j+tau}
    squares = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames ** 2, axis=1)], axis=1)
    shifted = squares[:, frame:frame + lags] - squares[:, :lags]  # (N, lags)
    d_all = np.maximum(squares[:, frame:frame + 1] + shifted - 2 * cross, 0.0)
    f0s = []
    for d in d_all:
        cmnd = np.ones_like(d)
        cumsum = np.cumsum(d[1:])
        cmnd[1:] = d[1:] * np.arange(1, len(d)) / np.maximum(cumsum, 1e-12)
        below = np.flatnonzero(cmnd[min_lag : max_lag + 1] < threshold)
        if below.size == 0:
            continue
        tau = min_lag + below[0]
        while tau + 1 <= max_lag and cmnd[tau + 1] < cmnd[tau]:  # walk down to the local minimum
            tau += 1
        a, b, c = cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if abs(denom) > 1e-12 else 0.0
        f0s.append(sample_rate / (tau + float(np.clip(shift, -1, 1))))
    return float(np.median(f0s)) if f0s else None
