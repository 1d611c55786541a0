"""Synthetic signals with known onsets and pitches for the metric tests."""

from __future__ import annotations

import numpy as np
import torch

from c3llm.core.media import Audio


def click_train(times, *, duration=2.0, sample_rate=22050, noise=0.003, seed=0, amplitude=0.8):
    """Decaying noise bursts starting at ``times`` (s) over a faint noise floor. ``(T,)``."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, noise, int(duration * sample_rate))
    n = int(0.03 * sample_rate)
    for t in times:
        i = int(t * sample_rate)
        burst = np.exp(-np.arange(n) / (0.005 * sample_rate)) * rng.normal(0.0, 1.0, n) * amplitude
        y[i : i + n] += burst[: len(y) - i]
    return y


def tone_events(times, freq, *, duration=1.0, sample_rate=16000, event=0.12):
    """Sine bursts (with a 3 ms attack) at ``times``. ``(T,)``."""
    y = np.zeros(int(duration * sample_rate))
    n = int(event * sample_rate)
    t = np.arange(n) / sample_rate
    env = np.minimum(1.0, t / 0.003) * np.minimum(1.0, (event - t) / (event / 2))  # sharp attack, linear fade
    for start in times:
        i = int(start * sample_rate)
        seg = 0.6 * np.sin(2 * np.pi * freq * t) * env
        y[i : i + n] += seg[: len(y) - i]
    return y


def audio(y, sample_rate) -> Audio:
    return Audio(torch.from_numpy(np.asarray(y, dtype=np.float32))[None], sample_rate)
