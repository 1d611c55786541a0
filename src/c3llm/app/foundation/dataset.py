"""The captioned foundation corpus on disk: audio, captions, event labels and video frames.

Written once per config into a folder (``corpus.safetensors`` + ``clips.json``) and read back
by every pretraining objective:

- ``audio``   ``(N, T)`` int16 (scaled by 32767), clip ``i`` = ``foundation_clip(seed, i)``
- ``frames``  ``(V, F, S, S, 3)`` uint8, the first ``video_clips`` clips rendered
- ``frame_labels`` ``(V, F, 8 + 1 + 4)`` float32 per frame: kinds showing (multi-hot), an onset
  in the last frame interval, the pitch class of the loudest object showing (none/low/mid/high)
- ``clips.json``: per clip the captions and the events
"""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import numpy as np
import torch

from c3llm.app.foundation.annotated import AnnotatedClip, annotated_clip
from c3llm.app.foundation.captions import captions_for, pitch_class
from c3llm.app.foundation.corpus import KINDS
from c3llm.app.foundation.frames import FADE, render_frames
from c3llm.core.checkpoint import load_tensors, read_json, save_tensors, write_json
from c3llm.core.config import field, in_range
from c3llm.core.errors import CheckpointError
from c3llm.core.progress import progress_bar

log = logging.getLogger(__name__)

PITCH_CLASSES = (None, "low", "mid", "high")
#: frame label width: kinds, onset, pitch class
LABEL_DIM = len(KINDS) + 1 + len(PITCH_CLASSES)


@attrs.frozen(kw_only=True)
class FoundationDataConfig:
    """The captioned foundation corpus ([pretrain.corpus])."""

    seed: int = field(0, validator=in_range(0), help="corpus seed (the task world has its own)")
    clips: int = field(1000, validator=in_range(2), help="captioned audio clips")
    seconds: float = field(4.0, validator=in_range(0.5, 30.0), help="clip length")
    sample_rate: int = field(16_000, validator=in_range(8000, 48_000), help="audio rate")
    captions_per_clip: int = field(4, validator=in_range(1, 16), help="paraphrased captions per clip")
    video_clips: int = field(300, validator=in_range(0), help="clips also rendered as video (the first ones)")
    fps: float = field(12.0, validator=in_range(1.0, 60.0), help="video frame rate")
    frame_size: int = field(64, validator=in_range(16, 256), help="video frame side, pixels")


@attrs.frozen
class FoundationCorpus:
    audio: torch.Tensor  # (N, T) float32
    captions: list[list[str]]
    frames: torch.Tensor  # (V, F, S, S, 3) uint8
    frame_labels: torch.Tensor  # (V, F, LABEL_DIM)
    config: FoundationDataConfig

    def texts(self) -> list[str]:
        return [c for caps in self.captions for c in caps]


def frame_labels(clip: AnnotatedClip, count: int, fps: float) -> np.ndarray:
    """``(count, LABEL_DIM)``: per frame the kinds showing, an onset since the previous frame,
    and the pitch class of the loudest event showing (as :mod:`.frames` draws them)."""
    out = np.zeros((count, LABEL_DIM), np.float32)
    for k in range(count):
        t = k / fps
        showing = [e for e in clip.events if 0 <= t - e.onset <= e.length + FADE]
        for e in showing:
            out[k, KINDS.index(e.kind)] = 1.0
        out[k, len(KINDS)] = float(any(t - 1 / fps < e.onset <= t for e in clip.events))
        loudest = max(showing, key=lambda e: e.level_db, default=None)
        cls = PITCH_CLASSES.index(pitch_class(loudest.pitch_hz)) if loudest is not None else 0
        out[k, len(KINDS) + 1 + cls] = 1.0
    return out


def write_corpus(config: FoundationDataConfig, folder: Path, *, progress: bool = True) -> dict:
    """Generate the corpus into ``folder`` (see module doc)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = config.clips
    samples = max(1, round(config.seconds * config.sample_rate))
    count = max(1, round(config.seconds * config.fps))
    video = min(config.video_clips, n)
    audio = np.zeros((n, samples), np.int16)
    frames = np.zeros((video, count, config.frame_size, config.frame_size, 3), np.uint8)
    labels = np.zeros((video, count, LABEL_DIM), np.float32)
    records = []
    with progress_bar(n, "foundation corpus", unit="clip", enabled=progress) as bar:
        for i in range(n):
            clip = annotated_clip(config.seed, i, config.seconds, config.sample_rate)
            audio[i] = np.round(np.clip(clip.audio, -1, 1) * 32767).astype(np.int16)
            records.append({"captions": captions_for(clip, config.seed, i, config.captions_per_clip),
                            "events": [attrs.asdict(e) for e in clip.events]})
            if i < video:
                frames[i] = render_frames(clip, config.seed, i, config.fps, config.frame_size)
                labels[i] = frame_labels(clip, count, config.fps)
            bar.update()
    save_tensors(folder / "corpus.safetensors", {"audio": torch.from_numpy(audio), "frames": torch.from_numpy(frames),
                                                 "frame_labels": torch.from_numpy(labels)})
    write_json(folder / "clips.json", records)
    words = {w for r in records for c in r["captions"] for w in c.split()}
    return {"clips": n, "video_clips": video, "captions": n * config.captions_per_clip, "distinct_words": len(words),
            "hours": round(n * config.seconds / 3600, 3)}


def read_corpus(folder: Path, config: FoundationDataConfig) -> FoundationCorpus:
    """The corpus :func:`write_corpus` wrote into ``folder``."""
    folder = Path(folder)
    tensors = load_tensors(folder / "corpus.safetensors")
    records = read_json(folder / "clips.json")
    if len(records) != tensors["audio"].shape[0]:
        raise CheckpointError(f"{folder}: clips.json and corpus.safetensors disagree on the clip count; delete the folder")
    audio = tensors["audio"].float() / 32767.0
    return FoundationCorpus(audio, [r["captions"] for r in records], tensors["frames"], tensors["frame_labels"], config)


def corpus_summary(corpus: FoundationCorpus) -> str:
    hours = corpus.audio.shape[0] * corpus.config.seconds / 3600
    return (f"{corpus.audio.shape[0]} clips ({hours:.2f} h), {len(corpus.texts())} captions, "
            f"{corpus.frames.shape[0]} videos x {corpus.frames.shape[1]} frames")


