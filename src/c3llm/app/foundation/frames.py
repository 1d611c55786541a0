"""Video of foundation clips: each event is an object whose look follows its kind and pitch,
and which flashes and jumps at its onset.

- shape by kind (disc, triangle, speckled square, square, bar, ring, stripes, tall ellipse);
  a glide's triangle points up (rising), down (falling) or right;
- height and hue by pitch (high = top and blue, low = bottom and red; no pitch: middle, grey);
- brightness and size by level; the object shows while its event sounds and fades after;
- onset: a white flash and an upward jump that settle over ~0.1 s (what flow and frame
  differences pick up).

Frames are ``(F, S, S, 3)`` uint8 RGB at ``fps`` (frame ``k`` at ``k / fps`` s); the canvas
colour and each object's horizontal place depend only on ``(seed, index)``.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from c3llm.app.foundation.annotated import AnnotatedClip, Event

KIND_ORDER = ("harmonic", "sweep", "noise", "impact", "drone", "fm", "pulses", "formant")
#: onset flash / jump time constant, seconds
ONSET_TAU = 0.06
#: an object fades over this long after its event ends, seconds
FADE = 0.15


def _colour(event: Event, level: float) -> tuple[int, int, int]:
    if event.pitch_hz is None:
        value = 0.55 + 0.45 * level
        return (int(255 * value),) * 3
    t = float(np.clip((math.log(event.pitch_hz) - math.log(50)) / (math.log(7500) - math.log(50)), 0, 1))
    r, g, b = colorsys.hsv_to_rgb(0.66 * t, 0.85, 0.45 + 0.55 * level)
    return int(255 * r), int(255 * g), int(255 * b)


def _draw(canvas: np.ndarray, event: Event, cx: float, cy: float, radius: float, colour, rng_seed: int) -> None:
    import cv2

    c, r = (int(round(cx)), int(round(cy))), max(2, int(round(radius)))
    kind = event.kind
    if kind == "harmonic":
        cv2.circle(canvas, c, r, colour, -1, cv2.LINE_AA)
    elif kind == "sweep":
        d = event.direction
        if d > 0:
            pts = [(c[0], c[1] - r), (c[0] - r, c[1] + r), (c[0] + r, c[1] + r)]
        elif d < 0:
            pts = [(c[0], c[1] + r), (c[0] - r, c[1] - r), (c[0] + r, c[1] - r)]
        else:
            pts = [(c[0] + r, c[1]), (c[0] - r, c[1] - r), (c[0] - r, c[1] + r)]
        cv2.fillPoly(canvas, [np.array(pts, np.int32)], colour, cv2.LINE_AA)
    elif kind == "noise":
        rng = np.random.default_rng(rng_seed)
        for x, y in rng.integers(-r, r + 1, size=(max(6, r * r // 2), 2)):
            cv2.circle(canvas, (c[0] + int(x), c[1] + int(y)), 1, colour, -1)
    elif kind == "impact":
        cv2.rectangle(canvas, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), colour, -1)
    elif kind == "drone":
        cv2.rectangle(canvas, (c[0] - 2 * r, c[1] - max(1, r // 3)), (c[0] + 2 * r, c[1] + max(1, r // 3)), colour, -1)
    elif kind == "fm":
        cv2.circle(canvas, c, r, colour, max(1, r // 3), cv2.LINE_AA)
    elif kind == "pulses":
        for k in range(-r, r + 1, max(2, r // 2)):
            cv2.line(canvas, (c[0] + k, c[1] - r), (c[0] + k, c[1] + r), colour, 1)
    else:  # formant
        cv2.ellipse(canvas, c, (max(1, r // 2), r), 0, 0, 360, colour, -1, cv2.LINE_AA)


def render_frames(clip: AnnotatedClip, seed: int, index: int, fps: float = 12.0, size: int = 64) -> np.ndarray:
    """``(F, size, size, 3)`` uint8 frames of ``clip`` (``F = round(seconds * fps)``)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF4A, index]))
    background = rng.uniform(10, 60, size=3)
    events = list(clip.events)
    xs = rng.uniform(0.15, 0.85, size=len(events)) * size
    count = max(1, round(clip.seconds * fps))
    frames = np.empty((count, size, size, 3), np.uint8)
    for k in range(count):
        t = k / fps
        canvas = np.empty((size, size, 3), np.uint8)
        canvas[:] = background.astype(np.uint8)
        for i, event in enumerate(events):
            since = t - event.onset
            end = event.length + FADE
            if since < 0 or since > end:
                continue
            fade = 1.0 if since <= event.length else 1.0 - (since - event.length) / FADE
            level = float(np.clip((event.level_db + 40) / 39, 0, 1))
            pitch = 0.5 if event.pitch_hz is None else float(np.clip(
                (math.log(event.pitch_hz) - math.log(50)) / (math.log(7500) - math.log(50)), 0, 1))
            kick = math.exp(-since / ONSET_TAU)  # 1 at the onset, gone after ~0.2 s
            cy = size * (0.85 - 0.7 * pitch) - kick * 0.12 * size
            radius = size * (0.06 + 0.07 * level) * (1 + 0.4 * kick)
            colour = np.array(_colour(event, level), np.float32)
            colour = colour * fade + (255 - colour) * kick * 0.8  # white flash at the onset
            colour = colour * fade + background * (1 - fade)
            _draw(canvas, event, xs[i], cy, radius, tuple(int(v) for v in np.clip(colour, 0, 255)), seed + i)
        frames[k] = canvas
    return frames
