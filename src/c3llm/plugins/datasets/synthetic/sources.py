"""The synthetic world's sound sources: how each type sounds and how it looks.

Six source types, each with a distinct timbre and a distinct picture (shape + colour):

=========  ==========================================  ==============================
source     sound of one event                          picture
=========  ==========================================  ==============================
beep       sine + 2nd/3rd harmonic, flat, short        orange circle
chirp      exponential sweep over one octave, up/down   green triangle (points up/down)
knock      noise click + damped resonance (2 modes)     brown square
bell       inharmonic partials, long decay              yellow star
drone      buzzy sawtooth, amplitude-modulated,         blue horizontal bar
           sustained until the next event
hiss       band-pass filtered noise burst               grey cloud
=========  ==========================================  ==============================

A source's *pitch class* (low/mid/high) picks its characteristic frequency from
:data:`PITCH_HZ` (the fundamental, the sweep's centre, the resonance, or — for the hiss — the
noise band's centre). Every event waveform is peak-normalised to 1, starts at sample 0 with a
short attack (so its onset is sharp to within a millisecond) and fades out at its last sample,
so a scene can cut it short before the next event without a click.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import numpy as np

#: Pitch classes, low to high; each source maps them to its own frequency (Hz).
PITCH_CLASSES: tuple[str, ...] = ("low", "mid", "high")

#: source -> pitch class -> characteristic frequency in Hz (before the per-clip jitter).
PITCH_HZ: dict[str, dict[str, float]] = {
    "beep": {"low": 220.0, "mid": 440.0, "high": 880.0},
    "chirp": {"low": 300.0, "mid": 700.0, "high": 1600.0},
    "knock": {"low": 120.0, "mid": 350.0, "high": 1000.0},
    "bell": {"low": 200.0, "mid": 500.0, "high": 1250.0},
    "drone": {"low": 55.0, "mid": 110.0, "high": 220.0},
    "hiss": {"low": 500.0, "mid": 1500.0, "high": 4000.0},
}

#: Sweep directions of the chirp.
DIRECTIONS: tuple[str, ...] = ("up", "down")

#: Fraction of the Nyquist frequency above which no partial is synthesised.
_BAND_LIMIT = 0.9


@attrs.frozen(kw_only=True)
class SourceType:
    """One kind of sound source.

    :ivar name: class name (the VGGSound-style label).
    :ivar tonal: whether the characteristic frequency is a perceived pitch (``pitch_hz`` in
        the metadata) rather than a noise band's centre.
    :ivar continuous: a sustained sound that lasts until the next event (or the clip's end)
        instead of a fixed-length event.
    :ivar event_seconds: ``(min, max)`` natural length of one event (a clip draws one value);
        ``None`` for continuous sources.
    :ivar shape: picture drawn for it (see :func:`draw_source`).
    :ivar colour: RGB of the picture at rest.
    :ivar flash_seconds: time constant of the visual flash's decay after an onset.
    :ivar sustain: visual intensity held while a continuous sound lasts (0 for one-shots).
    :ivar synthesize: ``(num_samples, freq_hz, sample_rate, rng, direction) -> (T,)`` float64.
    """

    name: str
    tonal: bool
    continuous: bool
    event_seconds: tuple[float, float] | None
    shape: str
    colour: tuple[int, int, int]
    flash_seconds: float
    sustain: float
    synthesize: Callable[[int, float, int, np.random.Generator, str | None], np.ndarray]


# ---------------------------------------------------------------------------------------
# Sound


def _envelope(n: int, sample_rate: int, attack: float, release: float) -> np.ndarray:
    """Linear attack from 0 and linear fade to 0 at the last sample. ``(n,)``."""
    env = np.ones(n)
    a = min(n, max(1, round(attack * sample_rate)))
    r = min(n - a, max(1, round(release * sample_rate)))
    env[:a] = np.arange(a) / a
    if r > 0:
        env[n - r:] *= np.linspace(1.0, 0.0, r)
    return env


def _normalise(x: np.ndarray) -> np.ndarray:
    peak = np.abs(x).max()
    return x / peak if peak > 0 else x


def _harmonics(freq: float, sample_rate: int, amplitudes: list[float]) -> list[tuple[float, float]]:
    """``(frequency, amplitude)`` of harmonics ``k * freq`` that stay below the band limit."""
    nyquist = sample_rate / 2
    return [(k * freq, a) for k, a in enumerate(amplitudes, start=1) if k * freq < _BAND_LIMIT * nyquist]


def _beep(n: int, freq: float, sample_rate: int, rng: np.random.Generator, direction: str | None) -> np.ndarray:
    t = np.arange(n) / sample_rate
    wave = sum(a * np.sin(2 * np.pi * f * t) for f, a in _harmonics(freq, sample_rate, [1.0, 0.4, 0.2]))
    return _normalise(wave * _envelope(n, sample_rate, attack=0.003, release=0.015))


def _chirp(n: int, freq: float, sample_rate: int, rng: np.random.Generator, direction: str | None) -> np.ndarray:
    """Exponential sweep over one octave centred (geometrically) on ``freq``."""
    low, high = freq / math.sqrt(2), freq * math.sqrt(2)
    f0, f1 = (low, high) if direction != "down" else (high, low)
    length = n / sample_rate
    t = np.arange(n) / sample_rate
    k = f1 / f0
    phase = 2 * np.pi * f0 * length / math.log(k) * (k ** (t / length) - 1)  # integral of f(t)
    wave = np.sin(phase) + (0.25 * np.sin(2 * phase) if 2 * max(f0, f1) < _BAND_LIMIT * sample_rate / 2 else 0)
    return _normalise(wave * _envelope(n, sample_rate, attack=0.003, release=0.02))


def _knock(n: int, freq: float, sample_rate: int, rng: np.random.Generator, direction: str | None) -> np.ndarray:
    """A short noise click exciting two damped modes of a wooden body."""
    t = np.arange(n) / sample_rate
    click = rng.standard_normal(n) * np.exp(-t / 0.002)
    body = np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.045)
    if 2.3 * freq < _BAND_LIMIT * sample_rate / 2:
        body += 0.5 * np.sin(2 * np.pi * 2.3 * freq * t) * np.exp(-t / 0.02)
    return _normalise((0.6 * click + body) * _envelope(n, sample_rate, attack=0.0005, release=0.01))


#: Bell partials: (frequency ratio to the nominal pitch, relative amplitude) — inharmonic.
_BELL_PARTIALS = ((0.5, 0.5), (1.0, 1.0), (1.19, 0.45), (1.5, 0.35), (2.0, 0.5), (2.74, 0.25), (3.76, 0.15), (5.4, 0.08))


def _bell(n: int, freq: float, sample_rate: int, rng: np.random.Generator, direction: str | None) -> np.ndarray:
    t = np.arange(n) / sample_rate
    wave = np.zeros(n)
    for ratio, amp in _BELL_PARTIALS:
        f = ratio * freq
        if f >= _BAND_LIMIT * sample_rate / 2:
            continue
        decay = 1.2 / ratio**0.7  # higher partials die faster
        wave += amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * np.exp(-t / decay)
    strike = 0.3 * rng.standard_normal(n) * np.exp(-t / 0.003)
    return _normalise((wave + strike) * _envelope(n, sample_rate, attack=0.001, release=0.02))


def _drone(n: int, freq: float, sample_rate: int, rng: np.random.Generator, direction: str | None) -> np.ndarray:
    """Band-limited sawtooth with an engine-like amplitude wobble (depth 30 %)."""
    t = np.arange(n) / sample_rate
    amps = [1.0 / k for k in range(1, 25)]
    wave = sum(a * np.sin(2 * np.pi * f * t) for f, a in _harmonics(freq, sample_rate, amps))
    wobble = 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(6.0, 14.0) * t + rng.uniform(0, 2 * np.pi))
    return _normalise(wave * wobble * _envelope(n, sample_rate, attack=0.008, release=0.03))


def _hiss(n: int, freq: float, sample_rate: int, rng: np.random.Generator, direction: str | None) -> np.ndarray:
    """White noise band-passed to one octave around ``freq`` (4th-order Butterworth)."""
    from scipy.signal import butter, sosfilt

    nyquist = sample_rate / 2
    low = freq / math.sqrt(2)
    high = min(freq * math.sqrt(2), _BAND_LIMIT * nyquist)
    sos = butter(4, [low / nyquist, high / nyquist], btype="bandpass", output="sos")
    preroll = round(0.05 * sample_rate)  # let the filter settle before the burst starts
    noise = sosfilt(sos, rng.standard_normal(n + preroll))[preroll:]
    t = np.arange(n) / sample_rate
    shape = np.exp(-t / max(n / sample_rate, 1e-3))  # gentle decay over the burst
    return _normalise(noise * shape * _envelope(n, sample_rate, attack=0.004, release=0.03))


SOURCES: dict[str, SourceType] = {
    s.name: s
    for s in (
        SourceType(name="beep", tonal=True, continuous=False, event_seconds=(0.12, 0.25), shape="circle",
                   colour=(255, 140, 30), flash_seconds=0.10, sustain=0.0, synthesize=_beep),
        SourceType(name="chirp", tonal=True, continuous=False, event_seconds=(0.18, 0.3), shape="triangle",
                   colour=(60, 220, 90), flash_seconds=0.12, sustain=0.0, synthesize=_chirp),
        SourceType(name="knock", tonal=True, continuous=False, event_seconds=(0.12, 0.2), shape="square",
                   colour=(170, 100, 50), flash_seconds=0.08, sustain=0.0, synthesize=_knock),
        SourceType(name="bell", tonal=True, continuous=False, event_seconds=(0.8, 1.4), shape="star",
                   colour=(240, 220, 40), flash_seconds=0.30, sustain=0.0, synthesize=_bell),
        SourceType(name="drone", tonal=True, continuous=True, event_seconds=None, shape="bar",
                   colour=(50, 110, 255), flash_seconds=0.10, sustain=0.5, synthesize=_drone),
        SourceType(name="hiss", tonal=False, continuous=False, event_seconds=(0.15, 0.4), shape="cloud",
                   colour=(170, 170, 190), flash_seconds=0.12, sustain=0.3, synthesize=_hiss),
    )
}


# ---------------------------------------------------------------------------------------
# Picture

_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel precision for small shapes
_SCALE = 1 << _SHIFT


def _points(points: np.ndarray) -> list[np.ndarray]:
    return [np.round(points * _SCALE).astype(np.int32).reshape(-1, 1, 2)]


def draw_source(
    image: np.ndarray,
    source: SourceType,
    centre: tuple[float, float],
    radius: float,
    colour: tuple[float, float, float],
    direction: str | None = None,
) -> None:
    """Draw ``source``'s shape into ``image`` ``(H, W, 3)`` uint8, in place.

    :param centre: ``(x, y)`` in pixels. :param radius: half the shape's extent in pixels.
    """
    import cv2

    x, y = centre
    r = radius
    c = tuple(int(round(v)) for v in colour)
    aa = cv2.LINE_AA
    if source.shape == "circle":
        cv2.circle(image, (round(x * _SCALE), round(y * _SCALE)), round(r * _SCALE), c, -1, aa, _SHIFT)
    elif source.shape == "square":
        s = 0.85 * r
        pts = np.array([[x - s, y - s], [x + s, y - s], [x + s, y + s], [x - s, y + s]])
        cv2.fillPoly(image, _points(pts), c, aa, _SHIFT)
    elif source.shape == "triangle":
        sign = 1.0 if direction == "down" else -1.0  # apex up for a rising sweep
        pts = np.array([[x, y + sign * r], [x - r, y - sign * 0.8 * r], [x + r, y - sign * 0.8 * r]])
        cv2.fillPoly(image, _points(pts), c, aa, _SHIFT)
    elif source.shape == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        pts = np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(image, _points(pts), c, aa, _SHIFT)
    elif source.shape == "bar":
        w, h = 1.4 * r, 0.45 * r
        pts = np.array([[x - w, y - h], [x + w, y - h], [x + w, y + h], [x - w, y + h]])
        cv2.fillPoly(image, _points(pts), c, aa, _SHIFT)
    elif source.shape == "cloud":
        for dx, dy, k in ((-0.5, 0.15, 0.5), (0.5, 0.15, 0.5), (0.0, -0.2, 0.62), (0.0, 0.3, 0.45)):
            cv2.circle(image, (round((x + dx * r) * _SCALE), round((y + dy * r) * _SCALE)),
                       round(k * r * _SCALE), c, -1, aa, _SHIFT)
    else:  # a SourceType built with an unknown shape is a programming error
        raise ValueError(f"source {source.name!r} has unknown shape {source.shape!r}")
