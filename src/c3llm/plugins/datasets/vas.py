"""VAS (Visually Aligned Sounds) reader in the layout of SpecVQGAN (github.com/v-iashin/SpecVQGAN).

Layout (``root`` = SpecVQGAN's ``data/vas``)::

    {root}/vas_{split}.txt                                   rows ``<class>/<video_id>`` (``split_file_pattern``)
    {root}/videos/{label}/{video_id}.mp4                     (``video_pattern``)
    {root}/features/{label}/audio_10s_22050hz/{video_id}.wav (``audio_pattern``, optional)

Eight classes (baby, cough, dog, drum, fireworks, gun, hammer, sneeze); the class folder is
the sample's ``label``. SpecVQGAN ships ``data/vas_train.txt`` and ``data/vas_valid.txt``
one level above ``data/vas``: point ``split_file_pattern`` at ``"../vas_{split}.txt"`` or copy
them into ``root``. The wav (SpecVQGAN's ``extract_audio_and_video.py`` output) is used when
it exists; otherwise the mp4's own audio stream is the sound track
(``metadata["audio_in_video"]`` True).
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
    pattern_validator,
    readable_lines,
    require_manifest,
)

VAS_CLASSES = ("baby", "cough", "dog", "drum", "fireworks", "gun", "hammer", "sneeze")
_EXAMPLE = {"label": "dog", "video_id": "video_00000"}


@attrs.frozen(kw_only=True)
class VASConfig:
    root: str = field(help="SpecVQGAN's data/vas folder (videos/<class>/*.mp4)", path=True)
    split: str = field("train", validator=one_of("train", "valid", "test"), help="train, valid or test")
    split_file_pattern: str = field(
        "vas_{split}.txt", validator=pattern_validator(split="train"),
        help="split list (rows <class>/<video_id>), relative to root",
    )
    video_pattern: str = field(
        "videos/{label}/{video_id}.mp4", validator=pattern_validator(**_EXAMPLE),
        help="video file, relative to root",
    )
    audio_pattern: str = field(
        "features/{label}/audio_10s_22050hz/{video_id}.wav", validator=pattern_validator(**_EXAMPLE),
        help="separate wav, relative to root (used when present)",
    )
    classes: tuple[str, ...] = field(VAS_CLASSES, help="class folders a split row may name")
    limit: int | None = field(None, validator=in_range(1), help="stop after this many usable samples")


class VAS(ManifestDataset):
    """VAS clips of one split, labelled with their class."""

    name = "vas"

    def __init__(self, config: VASConfig):
        super().__init__(config)

    def candidates(self) -> Iterator[Sample | SkippedItem]:
        cfg = self.config
        path = require_manifest(
            self.root / cfg.split_file_pattern.format(split=cfg.split), self.name,
            f"the VAS {cfg.split} split list (rows <class>/<video_id>, as SpecVQGAN's data/vas_{cfg.split}.txt)",
        )
        for line, text in readable_lines(path):
            entry = text.strip()
            if not entry:
                continue
            label, sep, video_id = entry.partition("/")
            if not sep or not label or not video_id or "/" in video_id:
                raise InputError(f"{path}:{line}: expected <class>/<video_id>, got {entry!r}")
            if label not in cfg.classes:
                raise InputError(
                    f"{path}:{line}: unknown class {label!r}; expected one of {', '.join(cfg.classes)} "
                    f"(set `classes` for another class list)"
                )
            keys = {"label": label, "video_id": video_id}
            yield audio_visual_sample(
                id=f"{label}/{video_id}", split=cfg.split,
                video=self.resolve(cfg.video_pattern, **keys), audio=self.resolve(cfg.audio_pattern, **keys),
                label=label, metadata={"video_id": video_id},
            )


@hookimpl
def register_datasets(register):
    register("vas", VAS, VASConfig,
             description="VAS in SpecVQGAN's layout: 8 classes, per-class mp4 folders, split lists")
