"""A synthetic clip's scene: its sampled attributes and event times, rendered to sound and frames.

One clip = one source type heard 1-4 times. Its attributes change both modalities:

- **pitch** (low/mid/high) -> the source's characteristic frequency, and the object's height
  in the frame (high = upper third);
- **loudness** (quiet/loud) -> the events' peak level, and the object's size and brightness;
- **events** -> one sound per onset, and a visible flash + size pulse of the object on the
  video frame shown at the onset time. Onsets lie exactly on the video frame grid
  (``k / fps``), so the sound onset and its visual event coincide analytically.

Everything a clip needs is sampled up front into a :class:`Clip` (including integer seeds
for the sound's noise), from a random stream derived from ``(world seed, split, index)``:
a clip does not depend on any other clip, and the same seed gives the same clip.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs
import numpy as np

from c3llm.plugins.datasets.synthetic.captions import make_captions
from c3llm.plugins.datasets.synthetic.sources import (
    DIRECTIONS,
    PITCH_CLASSES,
    PITCH_HZ,
    SOURCES,
    draw_source,
)

if TYPE_CHECKING:
    from c3llm.plugins.datasets.synthetic import WorldConfig

#: The splits, in generation order, with the code that seeds their random streams.
SPLITS: dict[str, int] = {"train": 0, "test": 1, "test_novel": 2}

#: loudness class -> (min, max) peak level of the events in dBFS.
LOUDNESS_DB: dict[str, tuple[float, float]] = {"quiet": (-26.0, -20.0), "loud": (-8.0, -3.0)}

#: Earliest first onset (s); it is also never on frame 0, so every onset has a frame before it.
FIRST_ONSET = 0.05
#: Time (s) left after the last onset for its sound.
LAST_EVENT_ROOM = 0.25
#: Silence (s) between the end of one event's sound and the next onset.
SILENCE_GAP = 0.05
#: The pitch's ± jitter in semitones around the class frequency.
PITCH_JITTER_SEMITONES = 1.0
#: Object height (fraction of the frame, from the top) per pitch class.
HEIGHT: dict[str, float] = {"high": 0.27, "mid": 0.5, "low": 0.73}
#: Visual release time constant (s) after a sound ends.
VISUAL_RELEASE = 0.06


@attrs.frozen(kw_only=True)
class Clip:
    """Everything needed to render one clip and to describe it (the ground truth).

    Times are seconds from the clip's start; ``offsets[i]`` is when event ``i``'s sound ends.
    """

    id: str
    split: str
    source: str
    pitch: str
    freq_hz: float
    loudness: str
    loudness_db: float
    direction: str | None
    onset_frames: tuple[int, ...]
    onsets: tuple[float, ...]
    offsets: tuple[float, ...]
    event_duration: float | None
    duration: float
    sample_rate: int
    fps: float
    size: tuple[int, int]
    position: tuple[float, float]
    background: tuple[int, int, int]
    noise_floor_db: float
    sound_seed: int
    captions: tuple[str, ...]

    @property
    def num_events(self) -> int:
        return len(self.onsets)

    @property
    def pitch_hz(self) -> float | None:
        """The perceived pitch; ``None`` for noise sources (their band centre is ``freq_hz``)."""
        return self.freq_hz if SOURCES[self.source].tonal else None

    @property
    def num_frames(self) -> int:
        return round(self.duration * self.fps)


# ---------------------------------------------------------------------------------------
# Sampling


def onset_frame_range(duration: float, fps: float) -> tuple[int, int]:
    """``(first, last)`` video frame an onset may fall on."""
    first = max(1, math.ceil(FIRST_ONSET * fps))
    last = math.floor((duration - LAST_EVENT_ROOM) * fps + 1e-9)
    return first, last


def max_events_that_fit(duration: float, fps: float, min_spacing: float) -> int:
    """How many onsets ``min_spacing`` apart fit in a clip (0 when none does)."""
    first, last = onset_frame_range(duration, fps)
    if last < first:
        return 0
    return 1 + (last - first) // math.ceil(min_spacing * fps - 1e-9)


def _sample_onset_frames(n: int, first: int, last: int, spacing: int, rng: np.random.Generator) -> list[int]:
    """``n`` sorted frames in ``[first, last]``, consecutive ones ``>= spacing`` apart, uniformly
    over all such sets (choose ``n`` of the slack positions, then re-insert the gaps)."""
    slack = last - first - (n - 1) * (spacing - 1) + 1
    picks = np.sort(rng.choice(slack, size=n, replace=False))
    return [first + int(p) + i * (spacing - 1) for i, p in enumerate(picks)]


def sample_clip(config: WorldConfig, split: str, index: int, source: str, pitch: str) -> Clip:
    """Draw one clip of ``(source, pitch)``; deterministic in ``(config.seed, split, index)``."""
    attr_seq, caption_seq, sound_seq = np.random.SeedSequence([config.seed, SPLITS[split], index]).spawn(3)
    rng = np.random.default_rng(attr_seq)
    kind = SOURCES[source]
    fps, duration = config.fps, config.duration

    freq = PITCH_HZ[source][pitch] * 2 ** (rng.uniform(-1, 1) * PITCH_JITTER_SEMITONES / 12)
    loudness = ("quiet", "loud")[int(rng.integers(2))]
    level = rng.uniform(*LOUDNESS_DB[loudness])
    direction = DIRECTIONS[int(rng.integers(len(DIRECTIONS)))] if source == "chirp" else None

    first, last = onset_frame_range(duration, fps)
    spacing = math.ceil(config.min_onset_spacing * fps - 1e-9)
    count = int(rng.integers(1, config.max_events + 1))
    frames = _sample_onset_frames(count, first, last, spacing, rng)
    onsets = [round(k / fps, 6) for k in frames]

    natural = round(rng.uniform(*kind.event_seconds), 3) if kind.event_seconds else None
    offsets = []
    for i, onset in enumerate(onsets):
        limit = onsets[i + 1] - SILENCE_GAP if i + 1 < count else duration - SILENCE_GAP
        offsets.append(round(limit if natural is None else min(onset + natural, limit), 6))

    position = (round(rng.uniform(0.25, 0.75), 4), round(HEIGHT[pitch] + rng.uniform(-0.04, 0.04), 4))
    background = tuple(int(v) for v in np.array([14, 14, 20]) + rng.integers(0, 16, size=3))
    captions = make_captions(
        source=source, pitch=pitch, count=count, loudness=loudness, direction=direction,
        num_captions=config.captions_per_clip, rng=np.random.default_rng(caption_seq),
    )
    return Clip(
        id=f"{split}_{index:04d}", split=split, source=source, pitch=pitch, freq_hz=round(freq, 2),
        loudness=loudness, loudness_db=round(level, 2), direction=direction,
        onset_frames=tuple(frames), onsets=tuple(onsets), offsets=tuple(offsets), event_duration=natural,
        duration=duration, sample_rate=config.sample_rate, fps=fps, size=tuple(config.video_size),
        position=position, background=background, noise_floor_db=config.noise_floor_db,
        sound_seed=int(sound_seq.generate_state(1)[0]), captions=tuple(captions),
    )


def combinations(config: WorldConfig) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(seen, novel)`` (source, pitch) pairs: seen ones make train/test, novel ones test_novel."""
    novel = [tuple(pair) for pair in config.novel_combinations]
    seen = [(s, p) for s in config.sources for p in PITCH_CLASSES if (s, p) not in novel]
    return seen, novel


def plan_world(config: WorldConfig) -> list[Clip]:
    """Every clip of the world, split by split. Pairs are cycled through in order, so each
    split is balanced over its (source, pitch) combinations, also in any prefix."""
    seen, novel = combinations(config)
    counts = {"train": config.num_train, "test": config.num_test, "test_novel": config.num_test_novel}
    clips = []
    for split, count in counts.items():
        pairs = novel if split == "test_novel" else seen
        for index in range(count):
            source, pitch = pairs[index % len(pairs)]
            clips.append(sample_clip(config, split, index, source, pitch))
    return clips


# ---------------------------------------------------------------------------------------
# Rendering


def render_audio(clip: Clip) -> np.ndarray:
    """The clip's mono waveform ``(T,)`` float32 in [-1, 1]: events over a faint noise floor."""
    sr = clip.sample_rate
    rng = np.random.default_rng(clip.sound_seed)
    n = round(clip.duration * sr)
    track = rng.standard_normal(n) * 10 ** (clip.noise_floor_db / 20)  # (T,)
    gain = 10 ** (clip.loudness_db / 20)
    kind = SOURCES[clip.source]
    for onset, offset in zip(clip.onsets, clip.offsets):
        start, end = round(onset * sr), min(n, round(offset * sr))
        track[start:end] += gain * kind.synthesize(end - start, clip.freq_hz, sr, rng, clip.direction)
    return np.clip(track, -1.0, 1.0).astype(np.float32)


def visual_intensity(clip: Clip) -> np.ndarray:
    """Per-frame event intensity ``(N,)`` in [0, 1]: 1 at an onset frame, decaying (to the
    source's sustain level while a continuous sound lasts), released after the sound ends."""
    kind = SOURCES[clip.source]
    frames = np.arange(clip.num_frames)  # (N,)
    level = np.zeros(clip.num_frames)
    for onset_frame, onset, offset in zip(clip.onset_frames, clip.onsets, clip.offsets):
        since = (frames - onset_frame) / clip.fps  # exact on the frame grid (onsets are rounded)
        length = offset - onset
        flash = kind.sustain + (1 - kind.sustain) * np.exp(-np.maximum(since, 0) / kind.flash_seconds)
        at_end = kind.sustain + (1 - kind.sustain) * np.exp(-length / kind.flash_seconds)
        released = at_end * np.exp(-np.maximum(since - length, 0) / VISUAL_RELEASE)
        event = np.where(since < 0, 0.0, np.where(since < length, flash, released))
        level = np.maximum(level, event)
    return level


def render_frames(clip: Clip) -> np.ndarray:
    """The clip's video ``(N, H, W, 3)`` uint8 RGB at ``clip.fps``."""
    width, height = clip.size
    kind = SOURCES[clip.source]
    shade = np.linspace(0.7, 1.3, height)[:, None, None]  # (H, 1, 1) vertical gradient
    background = np.clip(shade * np.array(clip.background)[None, None, :], 0, 255)  # (H, 1, 3)
    background = np.broadcast_to(background, (height, width, 3)).astype(np.uint8)

    loud = clip.loudness == "loud"
    base_radius = min(width, height) * (0.11 if loud else 0.07)
    rest = np.array(kind.colour, dtype=float) * (0.9 if loud else 0.55)
    centre = (clip.position[0] * width, clip.position[1] * height)

    intensity = visual_intensity(clip)
    frames = np.empty((clip.num_frames, height, width, 3), dtype=np.uint8)
    for k, v in enumerate(intensity):
        frame = background.copy()
        colour = rest + (255.0 - rest) * 0.7 * v  # flash towards white
        draw_source(frame, kind, centre, base_radius * (1 + 0.35 * v), tuple(colour), clip.direction)
        frames[k] = frame
    return frames
