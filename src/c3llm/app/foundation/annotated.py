"""Foundation clips with the parameters of their events: what captions and frames describe.

:func:`annotated_clip` draws exactly what :func:`~c3llm.app.foundation.corpus.foundation_clip`
draws (same seed sequence, same order of draws, the corpus's own event synthesiser), so its
audio is bit-identical to the corpus clip (a test holds it so), and it records for each event
its kind, onset, length, level and the pitch-like parameter the synthesiser drew first.
corpus.py itself is left as it is; the pitch is read by replaying the event's first draws on a
copy of the generator (:func:`_peek_pitch`).
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import torch

from c3llm.app.foundation.corpus import (
    KIND_WEIGHTS,
    KINDS,
    _colored_noise,
    _event,
    _loguniform,
)


@attrs.frozen
class Event:
    """One event of a clip. ``pitch_hz`` is the kind's main frequency (f0, band centre, grain
    tone), None when it has none (white/pink noise, noise clicks); ``direction`` is +1 / -1 for
    a rising / falling glide, 0 otherwise; ``rate_hz`` is the click rate of ``pulses``."""

    kind: str
    onset: float  # seconds (negative: started before the clip)
    length: float  # seconds
    level_db: float  # peak level, dBFS
    pitch_hz: float | None
    direction: int = 0
    rate_hz: float | None = None

    def audible_in(self, seconds: float) -> bool:
        return self.onset < seconds and self.onset + self.length > 0


@attrs.frozen
class AnnotatedClip:
    audio: np.ndarray  # (T,) float32, equal to foundation_clip(seed, index, ...)
    events: tuple[Event, ...]  # in the order they were drawn
    seconds: float
    silent_span: tuple[float, float] | None  # a stretch turned down by 60 dB, seconds

    def audible_events(self) -> list[Event]:
        return [e for e in self.events if e.audible_in(self.seconds)]


def _copy(rng: np.random.Generator) -> np.random.Generator:
    probe = np.random.Generator(type(rng.bit_generator)())
    probe.bit_generator.state = rng.bit_generator.state
    return probe


def _peek_pitch(rng: np.random.Generator, kind: str, n: int) -> tuple[float | None, int, float | None]:
    """(pitch_hz, direction, rate_hz) of the event ``_event(rng, kind, n, sr)`` is about to draw,
    read from a copy of ``rng`` (the first draws of each branch of corpus._event)."""
    p = _copy(rng)
    if kind in ("harmonic", "drone", "formant"):
        low, high = {"harmonic": (60, 4000), "drone": (40, 800), "formant": (70, 600)}[kind]
        return _loguniform(p, low, high), 0, None
    if kind == "sweep":
        fa, fb = _loguniform(p, 60, 6000), _loguniform(p, 60, 6000)
        mode = int(p.integers(3))
        direction = 0 if mode == 2 or abs(math.log(fb / fa)) < 0.3 else (1 if fb > fa else -1)
        return math.sqrt(fa * fb), direction, None
    if kind == "noise":
        if p.random() < 0.65:
            p.standard_normal(n)  # _band_noise draws the noise first, then its centre
            return _loguniform(p, 80, 7500), 0, None
        return None, 0, None
    if kind == "impact":
        return _loguniform(p, 50, 5000), 0, None
    if kind == "fm":
        return _loguniform(p, 80, 3000), 0, None
    # pulses: rate, grain length, tone or noise grains, grain tone
    rate = _loguniform(p, 2, 40)
    _loguniform(p, 0.001, 0.03)
    tone = p.random() < 0.5
    tone_hz = _loguniform(p, 200, 6000)
    return (tone_hz if tone else None), 0, rate


def annotated_clip(seed: int, index: int, seconds: float = 4.0, sample_rate: int = 16_000) -> AnnotatedClip:
    """Clip ``index`` of corpus ``seed`` with its events: the one procedure that draws a corpus clip
    (:func:`~c3llm.app.foundation.corpus.foundation_clip` returns its audio)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0DEC, index]))
    sr = sample_rate
    n = max(1, round(seconds * sr))
    mix = np.zeros(n)
    if rng.random() > 0.1:
        mix += _colored_noise(rng, n, sr, rng.uniform(-8, 2)) * 10 ** (rng.uniform(-90, -35) / 20)
    density = _loguniform(rng, 0.6, 6.0)
    count = max(1, int(rng.poisson(density * seconds)))
    events = []
    for _ in range(count):
        kind = KINDS[int(rng.choice(len(KINDS), p=KIND_WEIGHTS / KIND_WEIGHTS.sum()))]
        length = _loguniform(rng, 0.03, 3.0) if kind not in ("drone",) else _loguniform(rng, min(0.3, seconds), seconds)
        m = max(16, min(n, int(length * sr)))
        start = int(rng.integers(-m // 4, n))
        pitch, direction, rate = _peek_pitch(rng, kind, m)
        wave = _event(rng, kind, m, sr)  # the corpus's synthesiser; then the level, as the corpus draws them
        level = rng.uniform(-40, -1)
        event = wave * 10 ** (level / 20)
        level_db = float(level)
        lo, hi = max(0, start), min(n, start + m)
        if hi > lo:
            mix[lo:hi] += event[lo - start:hi - start]
        events.append(Event(kind, start / sr, m / sr, level_db, pitch, direction, rate))
    silent = None
    if rng.random() < 0.15:
        a = int(rng.integers(0, n))
        b = min(n, a + int(rng.uniform(0.2, 0.6) * n))
        mix[a:b] *= 10 ** (-60 / 20)
        silent = (a / sr, b / sr)
    peak = np.abs(mix).max()
    if peak > 0.99:
        mix *= 0.99 / peak
    return AnnotatedClip(mix.astype(np.float32), tuple(events), seconds, silent)


def foundation_clip(seed: int, index: int, seconds: float = 4.0, sample_rate: int = 16_000) -> np.ndarray:
    """Clip ``index`` of the corpus ``seed``: ``(T,)`` float32 in [-1, 1] (the audio of :func:`annotated_clip`)."""
    return annotated_clip(seed, index, seconds, sample_rate).audio


def foundation_clips(n: int, seconds: float = 4.0, seed: int = 0, sample_rate: int = 16_000,
                     *, start: int = 0) -> list[torch.Tensor]:
    """``n`` corpus clips ``(1, T)`` float32 (clips ``start .. start + n - 1`` of corpus ``seed``).

    Clip ``i`` depends only on ``(seed, i)``: asking for more clips, or from another ``start``,
    never changes the ones already drawn."""
    return [torch.from_numpy(foundation_clip(seed, i, seconds, sample_rate))[None] for i in range(start, start + n)]
