"""Resample a (possibly variable-frame-rate) video onto a fixed feature clock.

Feature frame ``i`` sits at time ``i / fps`` and shows the newest decoded frame presented at or
before that time (nearest earlier frame), so features stay aligned with the audio whatever the
source frame rate, and a variable-rate source is sampled by its real timestamps.
"""

from __future__ import annotations

import torch


def feature_times(duration: float, fps: float, max_seconds: float | None = None) -> torch.Tensor:
    """``(N,)`` float64 times ``i / fps`` with ``N = round(min(duration, max_seconds) * fps)`` (>= 1)."""
    seconds = duration if max_seconds is None else min(duration, max_seconds)
    count = max(1, round(seconds * fps))
    return torch.arange(count, dtype=torch.float64) / fps


def nearest_earlier(frame_times: torch.Tensor, times: torch.Tensor, *, tolerance: float = 1e-6) -> torch.Tensor:
    """For each of ``times`` ``(N,)``, the index of the last frame with ``frame_times <= t``.

    ``frame_times`` ``(M,)`` must be sorted; times before the first frame map to frame 0.
    ``tolerance`` absorbs timestamp rounding (a frame at 0.0999999 s counts as at 0.1 s).
    """
    idx = torch.searchsorted(frame_times.to(torch.float64), times.to(torch.float64) + tolerance, right=True) - 1
    return idx.clamp(min=0)
