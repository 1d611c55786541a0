"""VGGSound reader: labelled 10 s YouTube clips, video with a sound track (video-to-audio).

Layout (``root`` = the dataset folder)::

    {root}/vggsound.csv                                    no header: youtube_id,start_seconds,label,split
    {root}/video/{youtube_id}_{start_seconds:06d}.mp4      (``video_pattern``)
    {root}/audio/{youtube_id}_{start_seconds:06d}.wav      (``audio_pattern``, optional)

One CSV holds both splits (``train``, ``test``). The wav is used when it exists; otherwise
the mp4's own audio stream is the sound track (``audio_path`` None,
``metadata["audio_in_video"]`` True). VGGSound has no captions; ``label`` is the class.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from c3llm.core.config import field, in_range, one_of
from c3llm.core.errors import InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.roles.dataset import Sample, SkippedItem
from c3llm.plugins.datasets.manifest import (
    ManifestDataset,
    audio_visual_sample,
    parse_int,
    pattern_validator,
    read_csv,
)

COLUMNS = ("youtube_id", "start_seconds", "label", "split")
SPLITS = ("train", "test")
_EXAMPLE = {"youtube_id": "x", "start_seconds": 0}


@attrs.frozen(kw_only=True)
class VGGSoundConfig:
    root: str = field(help="folder holding vggsound.csv, video/ and audio/", path=True)
    split: str = field("train", validator=one_of(*SPLITS), help="train or test")
    manifest: str = field("vggsound.csv", help="the headerless CSV, relative to root")
    video_pattern: str = field(
        "video/{youtube_id}_{start_seconds:06d}.mp4", validator=pattern_validator(**_EXAMPLE),
        help="video file, relative to root",
    )
    audio_pattern: str = field(
        "audio/{youtube_id}_{start_seconds:06d}.wav", validator=pattern_validator(**_EXAMPLE),
        help="separate wav, relative to root (used when present)",
    )
    limit: int | None = field(None, validator=in_range(1), help="stop after this many usable samples")


class VGGSound(ManifestDataset):
    """VGGSound clips of one split, with their class label."""

    name = "vggsound"

    def __init__(self, config: VGGSoundConfig):
        super().__init__(config)

    def candidates(self) -> Iterator[Sample | SkippedItem]:
        cfg = self.config
        path = self.root / cfg.manifest
        for line, row in read_csv(path, dataset=self.name, columns=COLUMNS, header=False,
                                  expected="VGGSound CSV (no header; youtube_id,start_seconds,label,split)"):
            if row["split"] not in SPLITS:
                raise InputError(f"{path}:{line}: split must be 'train' or 'test', got {row['split']!r}")
            if row["split"] != cfg.split:
                continue
            start = parse_int(row["start_seconds"], path=path, line=line, column="start_seconds")
            keys = {"youtube_id": row["youtube_id"], "start_seconds": start}
            yield audio_visual_sample(
                id=f"{row['youtube_id']}_{start:06d}", split=cfg.split,
                video=self.resolve(cfg.video_pattern, **keys), audio=self.resolve(cfg.audio_pattern, **keys),
                label=row["label"], metadata=keys,
            )


@hookimpl
def register_datasets(register):
    register("vggsound", VGGSound, VGGSoundConfig,
             description="VGGSound CSV + local mp4 (and optional wav); labelled clips for video-to-audio")
