"""Shared machinery of the manifest-based dataset readers (AudioCaps, Clotho, VGGSound, VAS).

- :class:`ManifestDataset`: scans the manifest once, on first use (building it does no I/O),
  keeps the usable samples, records every skipped row in ``skipped`` and logs the count once.
- Strict manifest reading: a missing manifest, a wrong header or a malformed row raises
  :class:`ConfigError` / :class:`InputError` naming the file, the line and what was expected.
- Cheap media checks (exists, non-empty, header readable) that turn a broken file into a
  :class:`SkippedItem` reason instead of a crash later in feature extraction.
"""

from __future__ import annotations

import abc
import csv
import logging
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from c3llm.core.errors import ConfigError, InputError
from c3llm.core.paths import name_problem
from c3llm.core.roles.dataset import Dataset, Sample, SkippedItem

log = logging.getLogger(__name__)

#: How many skip reasons the one log line quotes.
REASONS_LOGGED = 3


# ---------------------------------------------------------------------------------------
# Config helpers


def pattern_validator(**example: Any) -> Callable:
    """attrs validator: a ``str.format`` path pattern may only use the placeholders in
    ``example`` (which also supplies values of the right type, e.g. ints for ``:06d``)."""

    def check(instance: Any, attribute: Any, value: str) -> None:
        names = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        unknown = [n for n in names if n not in example]
        if unknown:
            raise ConfigError(
                f"{attribute.name} = {value!r} uses unknown placeholder {{{unknown[0]}}}; "
                f"available: {', '.join('{' + k + '}' for k in example)}"
            )
        try:
            value.format(**example)
        except (ValueError, IndexError, KeyError) as exc:
            raise ConfigError(f"{attribute.name} = {value!r} is not a valid path pattern: {exc}") from exc

    return check


# ---------------------------------------------------------------------------------------
# Reading manifests


def require_manifest(path: Path, dataset: str, expected: str) -> Path:
    """``path`` if it is a file, else a :class:`ConfigError` saying what belongs there."""
    if not path.is_file():
        raise ConfigError(
            f"{dataset}: manifest not found: {path}. Expected {expected}. "
            f"Check `root` and `split` in the dataset config."
        )
    return path


def read_csv(
    path: Path, *, dataset: str, columns: Sequence[str], header: bool, expected: str
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line number, {column: value})`` for each non-blank row of a CSV manifest.

    :param columns: the exact columns every row must have (and the header, when ``header``).
    :raises ConfigError: the file is missing. :raises InputError: wrong header, wrong number
        of columns, or an empty value, naming ``path:line``.
    """
    require_manifest(path, dataset, expected)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        yield from _checked_rows(reader, path, columns=columns, header=header, dataset=dataset, expected=expected)


def readable_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 text manifest; a byte that is not UTF-8 is an
    :class:`InputError` naming ``path:line``."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(_not_utf8(path, raw, exc)) from exc
    yield from enumerate(text.splitlines(), start=1)


def _not_utf8(path: Path, raw: bytes, exc: UnicodeDecodeError) -> str:
    line = raw[: exc.start].count(b"\n") + 1
    return f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x}); save the manifest as UTF-8"


def _checked_rows(reader: Any, path: Path, *, columns: Sequence[str], header: bool, dataset: str,
                  expected: str) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        yield from _rows(reader, path, columns=columns, header=header, dataset=dataset, expected=expected)
    except UnicodeDecodeError as exc:
        raise InputError(_not_utf8(path, path.read_bytes(), exc)) from exc
    except csv.Error as exc:  # NUL bytes, a field over csv's size limit
        raise InputError(f"{path}:{reader.line_num + 1}: not a readable CSV row ({exc})") from exc


def _rows(reader: Any, path: Path, *, columns: Sequence[str], header: bool, dataset: str,
          expected: str) -> Iterator[tuple[int, dict[str, str]]]:
    if header:
        first = next(reader, None)
        got = [c.strip() for c in first] if first is not None else []
        if got != list(columns):
            raise InputError(
                f"{path}:1: expected the header {','.join(columns)!r}, got {','.join(got)!r}. "
                f"Is this the {dataset} {expected}?"
            )
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            raise InputError(
                f"{path}:{line}: expected {len(columns)} columns ({','.join(columns)}), "
                f"got {len(row)}: {','.join(row)[:120]!r}"
            )
        values = {c: v.strip() for c, v in zip(columns, row)}
        empty = [c for c, v in values.items() if not v]
        if empty:
            raise InputError(f"{path}:{line}: column {empty[0]!r} is empty")
        yield line, values


def parse_int(value: str, *, path: Path, line: int, column: str) -> int:
    """A non-negative integer field, or an :class:`InputError` naming ``path:line``."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (number == number and number >= 0 and number == int(number)):
        raise InputError(f"{path}:{line}: column {column!r} must be a non-negative integer, got {value!r}")
    return int(number)


# ---------------------------------------------------------------------------------------
# Cheap media checks (no decoding of the payload)


def audio_problem(path: Path) -> str | None:
    """Why the audio file at ``path`` cannot be used, or ``None`` when its header reads."""
    import soundfile as sf

    if not path.is_file():
        return f"audio file missing: {path}"
    if path.stat().st_size == 0:
        return f"audio file is empty (0 bytes): {path}"
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError
        return f"unreadable audio {path}: {exc}"
    if info.frames == 0:
        return f"audio file has no samples: {path}"
    return None


def video_problem(path: Path) -> tuple[str | None, bool]:
    """``(why the video at path cannot be used or None, whether it has an audio stream)``."""
    import av

    if not path.is_file():
        return f"video file missing: {path}", False
    if path.stat().st_size == 0:
        return f"video file is empty (0 bytes): {path}", False
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return f"no video stream in {path}", False
            return None, bool(container.streams.audio)
    except Exception as exc:  # av.error.InvalidDataError and friends
        return f"unreadable video {path}: {exc}", False


def audio_visual_sample(
    *, id: str, split: str, video: Path, audio: Path, label: str | None, metadata: Mapping[str, Any]
) -> Sample | SkippedItem:
    """A clip that needs a readable video and a sound track.

    The separate wav is used when it exists (and must then be readable); otherwise the
    video's own audio stream is the sound track: ``audio_path`` is ``None`` and
    ``metadata["audio_in_video"]`` is True. No sound at all skips the clip.
    """
    problem, video_has_audio = video_problem(video)
    if problem:
        return SkippedItem(id, problem)
    if audio.exists():
        problem = audio_problem(audio)
        if problem:
            return SkippedItem(id, problem)
        return Sample(id=id, split=split, audio_path=audio, video_path=video, label=label,
                      metadata={**metadata, "audio_in_video": False})
    if not video_has_audio:
        return SkippedItem(id, f"no sound: {audio} is missing and {video} has no audio stream")
    return Sample(id=id, split=split, audio_path=None, video_path=video, label=label,
                  metadata={**metadata, "audio_in_video": True})


# ---------------------------------------------------------------------------------------
# The base class


class ManifestDataset(Dataset, abc.ABC):
    """A dataset whose samples come from one manifest scan, cached for the instance.

    Subclasses implement :meth:`candidates`; the config must have ``root``, ``split`` and
    ``limit`` (maximum number of usable samples; ``None`` = all).
    """

    #: registry name, used in messages.
    name: str = "dataset"
    #: what the manifest lists, used in messages.
    unit: str = "entries"
    #: where a user finds (or makes) data in the expected layout.
    layout_hint: str = "see docs/datasets.md for the layout"

    def __init__(self, config: Any):
        self.config = config
        self.skipped: list[SkippedItem] = []
        self._samples: list[Sample] | None = None

    @abc.abstractmethod
    def candidates(self) -> Iterator[Sample | SkippedItem]:
        """Every manifest entry of the split, in manifest order, already media-checked."""

    def samples(self) -> list[Sample]:
        """The usable samples (scans the manifest on first call)."""
        if self._samples is None:
            self._samples = self._scan()
        return self._samples

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples())

    def __len__(self) -> int:
        return len(self.samples())

    def resolve(self, pattern: str, **values: Any) -> Path:
        """Absolute media path from a config pattern, relative to ``root``. Manifest values
        fill one file-name part each: a value with a path separator or ``..`` (which would
        point outside ``root``) is an :class:`InputError`."""
        for key, value in values.items():
            problem = name_problem(value) if isinstance(value, str) else None
            if problem:
                raise InputError(f"{self.name}: manifest value {key} = {value!r} {problem}; "
                                 "it names a media file under root, so it must be a plain file name")
        return (self.root / pattern.format(**values)).absolute()

    def _scan(self) -> list[Sample]:
        if not self.root.is_dir():
            raise ConfigError(
                f"{self.name}: root {self.root} is not a directory; set `root` to the folder "
                f"holding the dataset ({self.layout_hint})"
            )
        limit = self.config.limit
        samples: list[Sample] = []
        skipped: list[SkippedItem] = []
        for item in self.candidates():
            if isinstance(item, SkippedItem):
                skipped.append(item)
                continue
            samples.append(item)
            if limit is not None and len(samples) >= limit:
                break
        self.skipped = skipped
        if skipped:
            reasons = "; ".join(f"{s.id}: {s.reason}" for s in skipped[:REASONS_LOGGED])
            more = f" (+{len(skipped) - REASONS_LOGGED} more in .skipped)" if len(skipped) > REASONS_LOGGED else ""
            log.warning(
                "%s[%s]: skipped %d of %d %s with missing, empty or unreadable media: %s%s",
                self.name, self.config.split, len(skipped), len(skipped) + len(samples), self.unit, reasons, more,
            )
        if not samples:
            log.warning("%s[%s]: no usable sample under %s", self.name, self.config.split, self.root)
        return samples
