"""A procedural "foundation corpus": broad, dense-ish synthetic audio for pre-training a codec.

Far broader than the synthetic task world (six sources at three pitch classes): every
parameter is continuous and drawn fresh per event, and the event generators below are
written independently of ``c3llm.plugins.datasets.synthetic.sources`` (none is imported or
copied), so a codec trained here has not seen the world's (source, pitch) combinations.

Event kinds (each with random envelope, length 20 ms .. 3 s, level -40 .. -1 dBFS):

- ``harmonic``  random-spectrum harmonic tone (1-30 partials, random tilt and per-partial
                jitter, odd/even balance), optional vibrato, f0 log-uniform 60 .. 4000 Hz
- ``sweep``     linear / exponential / random-walk glide, 1-4 harmonics, 60 .. 6000 Hz
- ``noise``     band of noise (random centre 80 .. 7500 Hz, Q 0.3 .. 20, random slope), or
                white / pink / brown noise
- ``impact``    1-6 damped modes at random (in)harmonic ratios + a filtered noise click
- ``drone``     band-limited pulse / saw / square with random duty, AM 0.5 .. 20 Hz
- ``fm``        two-operator FM (ratio 0.25 .. 8, index 0 .. 8) with optional AM
- ``pulses``    trains of short clicks / grains at random rates (2 .. 40 Hz)
- ``formant``   pulse train through 2-4 random resonances (vowel-like)

Clips: 16 kHz mono, background noise of random colour at -90 .. -35 dBFS (none in 10 %),
events at random times (Poisson, 0.6 .. 6 per second; overlaps allowed), occasional
silent stretches, a random overall gain. Deterministic from ``seed``; clip ``i`` depends
only on ``(seed, i)``.

Usage::

    from c3llm.app.foundation import foundation_clips   # drawn by annotated.py from the synthesisers here
    clips = foundation_clips(512, 4.0, seed=0)       # list of (1, T) float32 tensors

Why it exists: a tiny EnCodec trained on the task world alone (short events in long silence)
collapsed; trained on this corpus (with the LSUV init and the dead-code threshold fix) it did
not, in 3 of 3 seeds (docs/codec.md). 512 x 4 s take ~25 s to generate on one core.
"""

from __future__ import annotations

import math

import numpy as np

KINDS = ("harmonic", "sweep", "noise", "impact", "drone", "fm", "pulses", "formant")
#: relative frequency of each event kind
KIND_WEIGHTS = np.array([0.2, 0.13, 0.15, 0.15, 0.1, 0.1, 0.07, 0.1])


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _envelope(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Random attack / decay / sustain / release envelope of ``n`` samples, peak 1."""
    t = np.arange(n) / sr
    length = n / sr
    shape = rng.integers(4)
    attack = min(length * 0.5, _loguniform(rng, 0.001, 0.3))
    release = min(length - attack, _loguniform(rng, 0.003, 0.5)) if length > attack else 0.0
    if shape == 0:  # percussive: attack then exponential decay
        tau = _loguniform(rng, 0.01, max(0.02, length))
        env = np.exp(-np.maximum(t - attack, 0) / tau)
    elif shape == 1:  # ADSR
        sustain = rng.uniform(0.2, 1.0)
        decay = _loguniform(rng, 0.01, 0.5)
        env = sustain + (1 - sustain) * np.exp(-np.maximum(t - attack, 0) / decay)
    elif shape == 2:  # flat
        env = np.ones(n)
    else:  # swell / random smooth contour
        knots = rng.uniform(0.1, 1.0, size=int(rng.integers(2, 7)))
        env = np.interp(t, np.linspace(0, length, len(knots)), knots)
    a = max(1, int(attack * sr))
    env[:a] *= np.linspace(0, 1, a) ** rng.uniform(0.5, 2.0)
    r = int(release * sr)
    if r > 1:
        env[n - r:] *= np.linspace(1, 0, r) ** rng.uniform(0.5, 2.0)
    return env


def _freq_contour(rng: np.random.Generator, n: int, sr: int, f0: float) -> np.ndarray:
    """Instantaneous frequency (Hz) of a mostly steady tone: optional vibrato and drift."""
    t = np.arange(n) / sr
    f = np.full(n, f0)
    if rng.random() < 0.35:
        f *= 2 ** (rng.uniform(0.05, 0.8) / 12 * np.sin(2 * np.pi * rng.uniform(3, 9) * t + rng.uniform(0, 6.3)))
    if rng.random() < 0.2:
        f *= 2 ** (rng.uniform(-2, 2) / 12 * t / max(t[-1], 1e-3))
    return f


def _additive(rng: np.random.Generator, freq: np.ndarray, sr: int, partials: list[tuple[float, float]]) -> np.ndarray:
    """Sum of partials ``(ratio, amplitude)`` on the instantaneous frequency ``freq``; partials
    above 0.45 * sr are dropped (band limit)."""
    phase = 2 * np.pi * np.cumsum(freq) / sr
    out = np.zeros_like(freq)
    top = freq.max()
    for ratio, amp in partials:
        if ratio * top >= 0.45 * sr:
            continue
        out += amp * np.sin(ratio * phase + rng.uniform(0, 2 * np.pi))
    return out


def _colored_noise(rng: np.random.Generator, n: int, sr: int, slope_db_oct: float) -> np.ndarray:
    """Gaussian noise with a spectral slope (dB/octave; 0 white, -3 pink, -6 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1] if n > 1 else 1.0
    spec *= (f / 1000.0) ** (slope_db_oct / 6.02)
    out = np.fft.irfft(spec, n)
    return out / (np.abs(out).max() + 1e-12)


def _band_noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    centre = _loguniform(rng, 80, 7500)
    q = _loguniform(rng, 0.3, 20)
    width = centre / q
    if rng.random() < 0.5:
        gain = np.exp(-0.5 * ((f - centre) / (width / 2)) ** 2)
    else:  # resonant (Lorentzian) band
        gain = 1 / (1 + ((f - centre) / (width / 2)) ** 2)
    out = np.fft.irfft(spec * gain, n)
    return out / (np.abs(out).max() + 1e-12)


def _event(rng: np.random.Generator, kind: str, n: int, sr: int) -> np.ndarray:
    """One event of ``kind``, ``n`` samples, peak-normalised."""
    t = np.arange(n) / sr
    if kind == "harmonic":
        f0 = _loguniform(rng, 60, 4000)
        count = int(rng.integers(1, 31))
        tilt = rng.uniform(0.3, 2.5)
        odd = rng.uniform(0.2, 1.0)
        partials = []
        for k in range(1, count + 1):
            amp = k ** (-tilt) * (1.0 if k % 2 else odd) * rng.uniform(0.3, 1.0)
            ratio = k * (1 + rng.uniform(-0.004, 0.004) * (k > 1))
            partials.append((ratio, amp))
        wave = _additive(rng, _freq_contour(rng, n, sr, f0), sr, partials)
    elif kind == "sweep":
        fa, fb = _loguniform(rng, 60, 6000), _loguniform(rng, 60, 6000)
        mode = rng.integers(3)
        if mode == 0:
            freq = np.linspace(fa, fb, n)
        elif mode == 1:
            freq = fa * (fb / fa) ** (t / max(t[-1], 1e-6))
        else:  # random walk in log-frequency
            knots = np.exp(rng.uniform(np.log(fa) - 1, np.log(fa) + 1, size=int(rng.integers(3, 8))))
            freq = np.clip(np.interp(t, np.linspace(0, t[-1] if n > 1 else 1, len(knots)), knots), 40, 7000)
        partials = [(k, rng.uniform(0.2, 1.0) / k) for k in range(1, int(rng.integers(1, 5)) + 1)]
        wave = _additive(rng, freq, sr, partials)
    elif kind == "noise":
        if rng.random() < 0.65:
            wave = _band_noise(rng, n, sr)
        else:
            wave = _colored_noise(rng, n, sr, rng.uniform(-8, 3))
    elif kind == "impact":
        base = _loguniform(rng, 50, 5000)
        wave = np.zeros(n)
        for _ in range(int(rng.integers(1, 7))):
            f = base * (rng.uniform(1, 6) if rng.random() < 0.7 else int(rng.integers(1, 6)))
            if f >= 0.45 * sr:
                continue
            tau = _loguniform(rng, 0.005, 0.8)
            wave += rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) * np.exp(-t / tau)
        click_len = min(n, int(_loguniform(rng, 0.0005, 0.02) * sr) + 1)
        click = np.zeros(n)
        click[:click_len] = _band_noise(rng, click_len, sr) if click_len > 8 else rng.standard_normal(click_len)
        click[:click_len] *= np.exp(-np.arange(click_len) / max(1, click_len / 4))
        wave = wave / (np.abs(wave).max() + 1e-12) + rng.uniform(0, 1.2) * click
        return wave / (np.abs(wave).max() + 1e-12)  # impacts keep their own decay
    elif kind == "drone":
        f0 = _loguniform(rng, 40, 800)
        shape = rng.integers(3)
        duty = rng.uniform(0.1, 0.5)
        partials = []
        for k in range(1, 60):
            if shape == 0:  # saw
                amp = 1 / k
            elif shape == 1:  # square
                amp = (1 / k) if k % 2 else 0.0
            else:  # pulse
                amp = abs(math.sin(math.pi * k * duty)) / k
            if amp:
                partials.append((k, amp * rng.uniform(0.7, 1.0)))
        wave = _additive(rng, _freq_contour(rng, n, sr, f0), sr, partials)
        depth = rng.uniform(0, 0.8)
        wave *= 1 + depth * np.sin(2 * np.pi * _loguniform(rng, 0.5, 20) * t + rng.uniform(0, 6.3))
    elif kind == "fm":
        fc = _loguniform(rng, 80, 3000)
        ratio = _loguniform(rng, 0.25, 8)
        index = rng.uniform(0, 8) * np.exp(-t / _loguniform(rng, 0.05, 3.0)) if rng.random() < 0.5 else rng.uniform(0, 5)
        mod = np.sin(2 * np.pi * fc * ratio * t)
        if fc * (1 + ratio * 3) > 0.45 * sr:
            index = np.minimum(index, 0.5)
        wave = np.sin(2 * np.pi * fc * t + index * mod)
        if rng.random() < 0.4:
            wave *= 1 + rng.uniform(0.2, 1) * np.sin(2 * np.pi * _loguniform(rng, 1, 30) * t)
    elif kind == "pulses":
        rate = _loguniform(rng, 2, 40)
        grain = max(8, int(_loguniform(rng, 0.001, 0.03) * sr))
        tone = rng.random() < 0.5
        gf = _loguniform(rng, 200, 6000)
        wave = np.zeros(n)
        pos = 0.0
        while pos < n:
            i = int(pos)
            g = min(grain, n - i)
            gt = np.arange(g) / sr
            body = np.sin(2 * np.pi * gf * gt) if tone else rng.standard_normal(g)
            wave[i:i + g] += body * np.hanning(g + 2)[1:-1] * rng.uniform(0.3, 1.0)
            pos += sr / rate * rng.uniform(0.7, 1.3)
    else:  # formant: glottal-like pulse train through random resonances
        f0 = _loguniform(rng, 70, 600)
        partials = [(k, 1 / k ** 1.2) for k in range(1, 80)]
        src = _additive(rng, _freq_contour(rng, n, sr, f0), sr, partials)
        spec = np.fft.rfft(src)
        f = np.fft.rfftfreq(n, 1 / sr)
        gain = np.zeros_like(f)
        for _ in range(int(rng.integers(2, 5))):
            fc, bw = _loguniform(rng, 250, 5000), _loguniform(rng, 50, 400)
            gain += rng.uniform(0.3, 1.0) / (1 + ((f - fc) / bw) ** 2)
        wave = np.fft.irfft(spec * gain, n)
    wave = wave / (np.abs(wave).max() + 1e-12)
    return wave * _envelope(rng, n, sr)
