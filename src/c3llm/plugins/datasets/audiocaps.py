"""AudioCaps reader: ``{root}/{split}.csv`` (one caption per row) grouped into one sample per clip.

Layout (``root`` = the dataset folder)::

    {root}/train.csv | val.csv | test.csv      header: audiocap_id,youtube_id,start_time,caption
    {root}/audio/{split}/{youtube_id}.wav      (``audio_pattern``)

Rows sharing a ``youtube_id`` (the test split has five per clip) become one :class:`Sample`
with all their captions, in manifest order.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from c3llm.core.config import field, in_range, one_of
from c3llm.core.hookspecs import hookimpl
from c3llm.core.roles.dataset import Sample, SkippedItem
from c3llm.plugins.datasets.manifest import (
    ManifestDataset,
    audio_problem,
    parse_int,
    pattern_validator,
    read_csv,
)

COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")


@attrs.frozen(kw_only=True)
class AudioCapsConfig:
    root: str = field(help="folder holding {split}.csv and the audio", path=True)
    split: str = field("train", validator=one_of("train", "val", "test"), help="train, val or test")
    manifest_pattern: str = field(
        "{split}.csv", validator=pattern_validator(split="train"), help="caption CSV, relative to root"
    )
    audio_pattern: str = field(
        "audio/{split}/{youtube_id}.wav",
        validator=pattern_validator(split="train", youtube_id="x", start_time=0),
        help="audio file of a clip, relative to root",
    )
    limit: int | None = field(None, validator=in_range(1), help="stop after this many usable samples")


class AudioCaps(ManifestDataset):
    """AudioCaps clips with all their captions (text-to-audio and audio-to-text)."""

    name = "audiocaps"

    def __init__(self, config: AudioCapsConfig):
        super().__init__(config)

    def candidates(self) -> Iterator[Sample | SkippedItem]:
        cfg = self.config
        path = self.root / cfg.manifest_pattern.format(split=cfg.split)
        clips: dict[str, dict] = {}  # youtube_id -> rows, in first-seen order
        for line, row in read_csv(path, dataset=self.name, columns=COLUMNS, header=True,
                                  expected=f"AudioCaps {cfg.split} caption CSV"):
            start = parse_int(row["start_time"], path=path, line=line, column="start_time")
            clip = clips.setdefault(row["youtube_id"], {"start_time": start, "captions": [], "ids": []})
            clip["captions"].append(row["caption"])
            clip["ids"].append(row["audiocap_id"])
        for youtube_id, clip in clips.items():
            audio = self.resolve(cfg.audio_pattern, split=cfg.split, youtube_id=youtube_id,
                                 start_time=clip["start_time"])
            problem = audio_problem(audio)
            if problem:
                yield SkippedItem(youtube_id, problem)
                continue
            yield Sample(
                id=youtube_id, split=cfg.split, audio_path=audio, captions=tuple(clip["captions"]),
                metadata={"audiocap_ids": tuple(clip["ids"]), "start_time": clip["start_time"]},
            )


@hookimpl
def register_datasets(register):
    register("audiocaps", AudioCaps, AudioCapsConfig,
             description="AudioCaps caption CSVs + local wavs; one sample per YouTube clip")
