"""The synthetic tri-modal world: generated clips with analytic ground truth, and its reader.

No dataset can be downloaded here, so the embedded default trains and evaluates on a world
the project writes itself: short mono clips of six sound sources (beep, chirp, knock, bell,
drone, hiss) whose pitch, loudness and event times are known exactly, each with a matching
video (the source's shape flashes at every sound onset) and several captions.

- :class:`WorldConfig` + :func:`generate_world` write a world (metadata.jsonl plus the
  AudioCaps, Clotho and VGGSound layouts, so those readers work on it unchanged);
- the ``synthetic`` dataset plugin (:class:`SyntheticDataset`) reads ``metadata.jsonl`` back
  into :class:`~c3llm.core.roles.dataset.Sample` objects with the full ground truth.

See ``docs/synthetic_world.md``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from c3llm.core.config import field, in_range, one_of, to_mapping
from c3llm.core.errors import ConfigError, InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.roles.dataset import Sample, SkippedItem
from c3llm.plugins.datasets.manifest import (
    ManifestDataset,
    audio_problem,
    readable_lines,
    video_problem,
)
from c3llm.plugins.datasets.synthetic.captions import (
    TEMPLATES,
    VOCABULARY,
    attributes_from_caption,
)
from c3llm.plugins.datasets.synthetic.sources import PITCH_CLASSES, SOURCES

__all__ = [
    "VOCABULARY",
    "GeneratedWorld",
    "SyntheticDataset",
    "SyntheticDatasetConfig",
    "WorldConfig",
    "attributes_from_caption",
    "generate_world",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "test_novel")
METADATA = "metadata.jsonl"

#: How many skip reasons the one warning line quotes.


# ---------------------------------------------------------------------------------------
# Generation config


def _video_size(instance: Any, attribute: attrs.Attribute, value: tuple[int, ...]) -> None:
    if len(value) != 2 or any(v < 16 or v % 2 for v in value):
        raise ValueError(f"{attribute.name} must be two even numbers >= 16 (H.264 needs even sizes), got {value!r}")


def _source_names(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    unknown = [s for s in value if s not in SOURCES]
    if unknown or not value or len(set(value)) != len(value):
        raise ValueError(
            f"{attribute.name} must be distinct names from {', '.join(SOURCES)}, got {list(value)!r}"
        )


def _pairs(instance: Any, attribute: attrs.Attribute, value: tuple[tuple[str, ...], ...]) -> None:
    for pair in value:
        if len(pair) != 2 or pair[0] not in SOURCES or pair[1] not in PITCH_CLASSES:
            raise ValueError(
                f"{attribute.name}: {list(pair)!r} is not a (source, pitch) pair; sources are "
                f"{', '.join(SOURCES)} and pitches {', '.join(PITCH_CLASSES)}"
            )


@attrs.frozen(kw_only=True)
class WorldConfig:
    """How to generate a synthetic world. The defaults make the embedded default's world:
    720 clips of 4 s, 16 kHz mono, 64x64 video at 12 fps."""

    seed: int = field(0, validator=in_range(0), help="world seed; same seed -> identical world")
    num_train: int = field(600, validator=in_range(0), help="clips in the train split")
    num_test: int = field(60, validator=in_range(0), help="held-out clips of seen (source, pitch) pairs")
    num_test_novel: int = field(60, validator=in_range(0), help="clips of the novel (source, pitch) pairs")
    duration: float = field(4.0, validator=in_range(0.5, 60.0), help="clip length in seconds")
    sample_rate: int = field(16000, validator=in_range(16000, 48000), help="audio sample rate (Hz), mono")
    # variadic tuple annotations: the core's fixed-length tuple coercion swaps items and types
    video_size: tuple[int, ...] = field((64, 64), validator=_video_size, help="video (width, height) in pixels")
    fps: float = field(12.0, validator=in_range(4.0, 60.0), help="video frame rate; onsets lie on its frame grid")
    sources: tuple[str, ...] = field(tuple(SOURCES), validator=_source_names, help="source types in the world")
    novel_combinations: tuple[tuple[str, ...], ...] = field(
        (("beep", "mid"), ("bell", "low"), ("chirp", "high")), validator=_pairs,
        help="(source, pitch) pairs kept out of train/test; test_novel is made of them only",
    )
    max_events: int = field(4, validator=in_range(1, 4), help="events per clip are drawn from 1..max_events")
    min_onset_spacing: float = field(0.3, validator=in_range(0.15, 2.0), help="minimum seconds between onsets")
    captions_per_clip: int = field(
        5, validator=in_range(5, len(TEMPLATES)), help="captions per clip (Clotho rows need five)"
    )
    noise_floor_db: float = field(-70.0, validator=in_range(-120.0, -40.0), help="background noise RMS in dBFS")

    def __attrs_post_init__(self) -> None:
        from c3llm.plugins.datasets.synthetic.scene import (
            combinations,
            max_events_that_fit,
        )

        missing = sorted({s for s, _ in self.novel_combinations} - set(self.sources))
        if missing:
            raise ConfigError(
                f"novel_combinations name source(s) {missing} that are not in sources; "
                f"add them to sources or drop those pairs"
            )
        seen, novel = combinations(self)
        if not seen and self.num_train + self.num_test > 0:
            raise ConfigError("novel_combinations covers every (source, pitch) pair; train/test would be empty")
        if not novel and self.num_test_novel > 0:
            raise ConfigError("num_test_novel > 0 needs at least one pair in novel_combinations (or set it to 0)")
        fits = max_events_that_fit(self.duration, self.fps, self.min_onset_spacing)
        if fits < self.max_events:
            raise ConfigError(
                f"max_events = {self.max_events} onsets {self.min_onset_spacing} s apart do not fit in a "
                f"{self.duration} s clip (at most {fits} do); lengthen duration, lower max_events or "
                f"min_onset_spacing"
            )


@attrs.frozen
class GeneratedWorld:
    """What :func:`generate_world` wrote: the root, clips per split, and the time it took."""

    root: Path
    counts: dict[str, int]
    seconds: float


def generate_world(
    config: WorldConfig, out_dir: str | Path, *, progress: bool = True, overwrite: bool = False
) -> GeneratedWorld:
    """Write the world ``config`` describes into ``out_dir`` (see ``docs/synthetic_world.md``).

    Deterministic: the same config writes a byte-identical ``metadata.jsonl`` and identical
    audio.

    :param progress: show a progress bar. :param overwrite: replace a world already in
        ``out_dir`` (only a folder holding ``metadata.jsonl`` is ever cleared).
    :raises InputError: ``out_dir`` is not empty and ``overwrite`` is off, or it holds
        something other than a world.
    """
    from c3llm.core.progress import progress_bar
    from c3llm.plugins.datasets.synthetic.scene import (
        plan_world,
        render_audio,
        render_frames,
    )
    from c3llm.plugins.datasets.synthetic.writer import WORLD_ENTRIES, WorldWriter

    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} is a file; generate_world needs a folder")
    if root.is_dir() and any(root.iterdir()):
        if not (root / METADATA).is_file():
            raise InputError(f"{root} is not empty and holds no synthetic world ({METADATA}); choose an empty folder")
        if not overwrite:
            raise InputError(f"{root} already holds a synthetic world; pass overwrite=True to replace it")
        for name in WORLD_ENTRIES:
            entry = root / name
            if entry.is_dir():
                shutil.rmtree(entry)
            elif entry.exists():
                entry.unlink()
    root.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    clips = plan_world(config)
    writer = WorldWriter(root)
    bar = progress_bar(len(clips), "synthetic world", unit="clip", enabled=progress)
    for index, clip in enumerate(clips, start=1):
        writer.add(clip, render_audio(clip), render_frames(clip))
        bar.update(1)
        if index % 100 == 0:
            log.info("synthetic world: %d/%d clips", index, len(clips))
    bar.close()
    writer.finish(to_mapping(config))
    counts = {split: sum(c.split == split for c in clips) for split in SPLITS}
    seconds = time.perf_counter() - start
    log.info("wrote a synthetic world of %s clips to %s in %.1f s", counts, root, seconds)
    return GeneratedWorld(root=root, counts=counts, seconds=seconds)


# ---------------------------------------------------------------------------------------
# The dataset plugin


@attrs.frozen(kw_only=True)
class SyntheticDatasetConfig:
    root: str = field(help="folder of a world written by generate_world (holds metadata.jsonl)", path=True)
    split: str = field("train", validator=one_of(*SPLITS), help="train, test or test_novel")
    limit: int | None = field(None, validator=in_range(1), help="stop after this many usable samples")
    generate: WorldConfig | None = field(
        None, help="when set and `root` holds no world yet, the launcher generates this world there first"
    )


class SyntheticDataset(ManifestDataset):
    """The clips of one split of a synthetic world, with their full ground truth as metadata.

    ``label`` is the source type; ``metadata`` is the clip's ``metadata.jsonl`` object
    (onsets, offsets, pitch, loudness, attributes …). The manifest is scanned once, on first
    use; clips whose wav or mp4 is missing, empty or unreadable are skipped, listed in
    :attr:`skipped` and counted in one warning.
    """

    name = "synthetic"
    unit = "clips"
    layout_hint = "write one with c3llm.plugins.datasets.synthetic.generate_world(WorldConfig(), root)"

    def ensure_available(self, *, progress: bool = True) -> None:
        """Generate the world ``generate`` describes into ``root`` if it is not there yet.

        The world is written beside ``root`` and renamed into place when complete, so an
        interrupted generation never leaves a half world behind. A world already at ``root``
        that was made from another config is refused rather than silently reused.
        """
        if self.config.generate is None:
            return
        root = self.root
        wanted = to_mapping(self.config.generate)
        if (root / METADATA).is_file():
            record = root / "world.json"
            existing = json.loads(record.read_text(encoding="utf-8")).get("config") if record.is_file() else None
            if existing is not None and existing != wanted:
                changed = sorted(k for k in wanted if existing.get(k) != wanted[k])
                raise ConfigError(
                    f"synthetic: {root} holds a world made with other settings ({', '.join(changed)}); "
                    f"point `root` at a new folder or delete that one"
                )
            return
        if root.exists() and any(root.iterdir()):
            raise ConfigError(f"synthetic: {root} is not empty and holds no world; choose an empty or new folder")
        partial = root.with_name(root.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        generate_world(self.config.generate, partial, progress=progress)
        if root.exists():
            root.rmdir()
        partial.rename(root)
        self._samples = None

    def _rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        path = self.root / METADATA
        if not path.is_file():
            raise ConfigError(
                f"synthetic: {path} not found. Set `root` to a folder written by "
                f"c3llm.plugins.datasets.synthetic.generate_world(WorldConfig(), root)."
            )
        for line_number, line in readable_lines(path):  # a non-UTF-8 byte names its line
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{line_number}: not a JSON object ({exc}); regenerate the world") from exc
            if not isinstance(row, dict):
                raise InputError(f"{path}:{line_number}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in ("id", "split", "source", "captions", "audio", "video") if k not in row]
            if missing:
                raise InputError(f"{path}:{line_number}: missing key(s) {missing}; regenerate the world")
            yield line_number, row

    def candidates(self) -> Iterator[Sample | SkippedItem]:
        """The split's clips in manifest order, each media-checked (header / container only)."""
        for _, row in self._rows():
            if row["split"] != self.config.split:
                continue
            audio = (self.root / row["audio"]).absolute()
            video = (self.root / row["video"]).absolute()
            problem = audio_problem(audio) or video_problem(video)[0]
            if problem:
                yield SkippedItem(row["id"], problem)
                continue
            yield Sample(
                id=row["id"], split=row["split"], audio_path=audio, video_path=video,
                captions=tuple(row["captions"]), label=row["source"], metadata=row,
            )


@hookimpl
def register_datasets(register):
    register(
        "synthetic", SyntheticDataset, SyntheticDatasetConfig,
        description="generated tri-modal world (audio, video, captions) with analytic ground truth",
    )
