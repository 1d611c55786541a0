"""Clotho reader: five captions per audio file.

Layout (``root`` = the dataset folder)::

    {root}/clotho_captions_{split}.csv   header: file_name,caption_1,…,caption_5
    {root}/{split}/{file_name}           (``audio_pattern``; Clotho ships .wav)

Splits: development, validation, evaluation.
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
    pattern_validator,
    read_csv,
)

CAPTIONS = tuple(f"caption_{i}" for i in range(1, 6))
COLUMNS = ("file_name", *CAPTIONS)


@attrs.frozen(kw_only=True)
class ClothoConfig:
    root: str = field(help="folder holding the caption CSVs and one audio folder per split", path=True)
    split: str = field(
        "development", validator=one_of("development", "validation", "evaluation"),
        help="development, validation or evaluation",
    )
    manifest_pattern: str = field(
        "clotho_captions_{split}.csv", validator=pattern_validator(split="development"),
        help="caption CSV, relative to root",
    )
    audio_pattern: str = field(
        "{split}/{file_name}", validator=pattern_validator(split="development", file_name="x.wav"),
        help="audio file, relative to root",
    )
    limit: int | None = field(None, validator=in_range(1), help="stop after this many usable samples")


class Clotho(ManifestDataset):
    """Clotho audio files with their five captions (audio-to-text, text-to-audio)."""

    name = "clotho"

    def __init__(self, config: ClothoConfig):
        super().__init__(config)

    def candidates(self) -> Iterator[Sample | SkippedItem]:
        cfg = self.config
        path = self.root / cfg.manifest_pattern.format(split=cfg.split)
        for _, row in read_csv(path, dataset=self.name, columns=COLUMNS, header=True,
                               expected=f"Clotho {cfg.split} caption CSV"):
            file_name = row["file_name"]
            audio = self.resolve(cfg.audio_pattern, split=cfg.split, file_name=file_name)
            problem = audio_problem(audio)
            if problem:
                yield SkippedItem(file_name, problem)
                continue
            yield Sample(id=file_name, split=cfg.split, audio_path=audio,
                         captions=tuple(row[c] for c in CAPTIONS))


@hookimpl
def register_datasets(register):
    register("clotho", Clotho, ClothoConfig,
             description="Clotho caption CSVs + local audio; five captions per sample")
