"""Writing a synthetic world to disk: media once, manifests in four layouts.

Each clip's wav and mp4 are written once, at the VGGSound paths (the canonical ones, which
``metadata.jsonl`` also points at); the AudioCaps and Clotho layouts reach the same wav
through hard links (a copy where the file system has none)::

    {root}/metadata.jsonl                          one JSON object per clip (all splits)
    {root}/world.json                              the generation config (provenance)
    {root}/audio/{id}_000000.wav                   canonical wav (VGGSound audio path)
    {root}/video/{id}_000000.mp4                   canonical mp4 (VGGSound video path)
    {root}/vggsound.csv                            train + test rows (no header)
    {root}/vggsound_test_novel.csv                 test_novel rows, split column "test"
    {root}/{train,test,test_novel}.csv             AudioCaps: one row per caption
    {root}/audio/{train,test,test_novel}/{id}.wav  AudioCaps audio (hard links)
    {root}/clotho_captions_{development,evaluation,test_novel}.csv   Clotho: five captions
    {root}/{development,evaluation,test_novel}/{id}.wav              Clotho audio (hard links)

The VGGSound reader accepts only the splits ``train``/``test`` in its CSV, so the novel
split gets a CSV of its own (read it with ``manifest = "vggsound_test_novel.csv"``,
``split = "test"``).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from c3llm.plugins.datasets.synthetic.scene import Clip
from c3llm.plugins.datasets.synthetic.sources import SOURCES

log = logging.getLogger(__name__)

METADATA = "metadata.jsonl"
WORLD_CONFIG = "world.json"

#: our split -> AudioCaps split (the CSV is ``{split}.csv``).
AUDIOCAPS_SPLITS = {"train": "train", "test": "test", "test_novel": "test_novel"}
#: our split -> Clotho split (the CSV is ``clotho_captions_{split}.csv``).
CLOTHO_SPLITS = {"train": "development", "test": "evaluation", "test_novel": "test_novel"}
#: our split -> (VGGSound CSV, value of its split column).
VGGSOUND_SPLITS = {"train": ("vggsound.csv", "train"), "test": ("vggsound.csv", "test"),
                   "test_novel": ("vggsound_test_novel.csv", "test")}
#: Clotho rows have exactly this many captions.
CLOTHO_CAPTIONS = 5

AUDIOCAPS_HEADER = ("audiocap_id", "youtube_id", "start_time", "caption")
CLOTHO_HEADER = ("file_name", *(f"caption_{i}" for i in range(1, CLOTHO_CAPTIONS + 1)))

#: Every file and folder a world writes at its top level (what ``overwrite`` may remove).
WORLD_ENTRIES = (
    METADATA, WORLD_CONFIG, "audio", "video", "vggsound.csv", "vggsound_test_novel.csv",
    *(f"{s}.csv" for s in AUDIOCAPS_SPLITS.values()),
    *(f"clotho_captions_{s}.csv" for s in CLOTHO_SPLITS.values()),
    *CLOTHO_SPLITS.values(),
)


def canonical_paths(clip_id: str) -> tuple[str, str]:
    """``(audio, video)`` paths of a clip relative to the world's root (VGGSound's layout)."""
    return f"audio/{clip_id}_000000.wav", f"video/{clip_id}_000000.mp4"


def _link(source: Path, target: Path) -> None:
    """Hard-link ``target`` to ``source`` (copy where hard links are not possible)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def metadata_row(clip: Clip) -> dict[str, Any]:
    """The clip's ``metadata.jsonl`` object: the shared fields first, then the extras."""
    audio, video = canonical_paths(clip.id)
    kind = SOURCES[clip.source]
    return {
        "id": clip.id,
        "split": clip.split,
        "source": clip.source,
        "pitch_hz": clip.pitch_hz,
        "num_events": clip.num_events,
        "onsets": list(clip.onsets),
        "loudness_db": clip.loudness_db,
        "duration": clip.duration,
        "captions": list(clip.captions),
        "audio": audio,
        "video": video,
        "attributes": {
            "pitch": clip.pitch,
            "loudness": clip.loudness,
            "direction": clip.direction,
            "freq_hz": clip.freq_hz,
        },
        "offsets": list(clip.offsets),
        "onset_frames": list(clip.onset_frames),
        "event_duration": clip.event_duration,
        "continuous": kind.continuous,
        "sample_rate": clip.sample_rate,
        "fps": clip.fps,
        "frame_size": list(clip.size),
        "object": {"shape": kind.shape, "colour": list(kind.colour), "position": list(clip.position)},
    }


class WorldWriter:
    """Writes clips' media as they are rendered, then every manifest at :meth:`finish`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.rows: list[dict[str, Any]] = []

    def add(self, clip: Clip, audio: np.ndarray, frames: np.ndarray) -> None:
        """Write one clip: ``audio`` ``(T,)`` float32, ``frames`` ``(N, H, W, 3)`` uint8."""
        import soundfile as sf
        import torch

        from c3llm.core.media import Video

        audio_rel, video_rel = canonical_paths(clip.id)
        wav = self.root / audio_rel
        wav.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(wav), audio, clip.sample_rate, subtype="PCM_16")
        _link(wav, self.root / "audio" / AUDIOCAPS_SPLITS[clip.split] / f"{clip.id}.wav")
        _link(wav, self.root / CLOTHO_SPLITS[clip.split] / f"{clip.id}.wav")
        Video.from_frames(torch.from_numpy(frames), clip.fps).save(self.root / video_rel, fps=clip.fps)
        self.rows.append(metadata_row(clip))

    def finish(self, config_mapping: dict[str, Any]) -> None:
        """Write ``metadata.jsonl``, the AudioCaps / Clotho / VGGSound manifests and ``world.json``."""
        with (self.root / METADATA).open("w", encoding="utf-8") as handle:
            for row in self.rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._write_audiocaps()
        self._write_clotho()
        self._write_vggsound()
        counts = {s: sum(r["split"] == s for r in self.rows) for s in AUDIOCAPS_SPLITS}
        (self.root / WORLD_CONFIG).write_text(
            json.dumps({"config": config_mapping, "counts": counts}, indent=2) + "\n", encoding="utf-8"
        )

    # -- manifests --------------------------------------------------------------------------

    def _csv(self, name: str, header: tuple[str, ...] | None, rows: list[list[Any]]) -> None:
        with (self.root / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            if header:
                writer.writerow(header)
            writer.writerows(rows)

    def _write_audiocaps(self) -> None:
        next_id = 1
        for split, name in AUDIOCAPS_SPLITS.items():
            rows = []
            for row in self.rows:
                if row["split"] != split:
                    continue
                for caption in row["captions"]:
                    rows.append([next_id, row["id"], 0, caption])
                    next_id += 1
            self._csv(f"{name}.csv", AUDIOCAPS_HEADER, rows)

    def _write_clotho(self) -> None:
        for split, name in CLOTHO_SPLITS.items():
            rows = [[f"{r['id']}.wav", *r["captions"][:CLOTHO_CAPTIONS]] for r in self.rows if r["split"] == split]
            self._csv(f"clotho_captions_{name}.csv", CLOTHO_HEADER, rows)

    def _write_vggsound(self) -> None:
        files: dict[str, list[list[Any]]] = {name: [] for name, _ in VGGSOUND_SPLITS.values()}
        for row in self.rows:
            name, column = VGGSOUND_SPLITS[row["split"]]
            files[name].append([row["id"], 0, row["source"], column])
        for name, rows in files.items():
            self._csv(name, None, rows)
