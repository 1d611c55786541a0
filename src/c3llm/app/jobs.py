"""Batch jobs: many generation requests from one file, run in batches, resumable.

A jobs file is JSONL (one object per line) or CSV (a header row), with these fields:

=========  ==========================================================================
``text``   caption: text -> audio (with ``video``: video + text -> audio)
``video``  video file: video -> audio
``audio``  audio file: audio -> caption
``seconds``  audio length (default: the video's, or ``generate.duration``)
``seed``   sampling seed of this job (default: its line number)
``output`` file name under the output folder (default: ``job-<line>``; ``.wav`` for audio,
           ``.txt`` for a caption); plain names only
=========  ==========================================================================

Every job writes one file; ``results.jsonl`` in the output folder gets one row per job
(``line``, ``output``, ``status`` = ``done`` | ``skipped`` | ``failed``, ``error``). A job whose
output exists is skipped, so a killed run resumes where it stopped; a bad job is reported
with its line and reason and the others go on. Relative media paths are taken from the jobs
file's folder.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from c3llm.core.errors import C3LLMError, InputError

log = logging.getLogger(__name__)

FIELDS = ("text", "video", "audio", "seconds", "seed", "output")
RESULTS_FILE = "results.jsonl"


@attrs.frozen
class Job:
    """One validated request of a jobs file."""

    line: int
    task: str  # t2a | v2a | a2t
    output: str  # file name under the output folder
    text: str | None = None
    video: Path | None = None
    audio: Path | None = None
    seconds: float | None = None
    seed: int = 0


@attrs.frozen
class JobError:
    """A line of the jobs file that cannot run, and why."""

    line: int
    output: str
    error: str


def read_jobs(path: str | Path) -> list[Job | JobError]:
    """Parse and check every line of a JSONL or CSV jobs file (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"jobs file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc}); save the jobs file as UTF-8") from exc
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        unknown = [k for k in (reader.fieldnames or []) if k not in FIELDS]
        if unknown:
            raise InputError(f"{path}: unknown column(s) {unknown}; columns: {', '.join(FIELDS)}")
        rows = [(number, dict(row)) for number, row in enumerate(reader, 2)]
    else:
        rows = []
        for number, raw in enumerate(text.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                rows.append((number, json.loads(raw)))
            except json.JSONDecodeError as exc:
                rows.append((number, exc))
    if not rows:
        raise InputError(f"{path} holds no jobs")
    return [_job(number, row, path.parent) for number, row in rows]


def _job(number: int, row: Any, base: Path) -> Job | JobError:
    output = f"job-{number}"
    if isinstance(row, Exception):
        return JobError(number, output, f"not JSON: {row}")
    if not isinstance(row, dict):
        return JobError(number, output, f"expected an object with {', '.join(FIELDS)}, got {type(row).__name__}")
    row = {k: v for k, v in row.items() if v not in (None, "")}
    unknown = [k for k in row if k not in FIELDS]
    if unknown:
        return JobError(number, output, f"unknown field(s) {unknown}; fields: {', '.join(FIELDS)}")
    try:
        output = _output_name(row.get("output", output))
        text = row.get("text")
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise InputError(f"text must be non-empty text, got {text!r}")
        video, audio = (_media(row.get(k), base, k) for k in ("video", "audio"))
        if audio is not None and (text is not None or video is not None):
            raise InputError("audio (captioning) cannot be combined with text or video")
        if text is None and video is None and audio is None:
            raise InputError("nothing to do: give text, video or audio")
        task = "a2t" if audio is not None else "v2a" if video is not None else "t2a"
        seconds = row.get("seconds")
        if seconds is not None:
            seconds = float(seconds)
            if not math.isfinite(seconds) or seconds <= 0:
                raise InputError(f"seconds must be a positive number, got {row['seconds']!r}")
        seed = int(row.get("seed", number))
        return Job(number, task, output, text, video, audio, seconds, seed)
    except (InputError, ValueError, TypeError) as exc:
        return JobError(number, output, str(exc))


def _output_name(name: Any) -> str:
    name = str(name)
    if not name or name in (".", "..") or Path(name).name != name or name.startswith("."):
        raise InputError(f"output must be a plain file name (no folders), got {name!r}")
    return Path(name).stem if Path(name).suffix.lower() in (".wav", ".txt") else name


def _media(value: Any, base: Path, what: str) -> Path | None:
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    return path


def output_path(job: Job | JobError, out_dir: Path) -> Path:
    suffix = ".txt" if isinstance(job, Job) and job.task == "a2t" else ".wav"
    return out_dir / f"{job.output}{suffix}"


def run_jobs(pipe, jobs: Sequence[Job | JobError], out_dir: str | Path, *, batch_size: int = 8,
             progress: bool = True) -> dict[str, int]:
    """Run ``jobs`` with ``pipe`` in batches of ``batch_size`` per task; write one file per
    job and a row per job in ``results.jsonl``.

    :return: counts of ``done``, ``skipped`` and ``failed`` jobs.
    """
    from c3llm.core.progress import progress_bar

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = [output_path(j, out_dir) for j in jobs]
    names = Counter(p.name for p in outputs)
    dupes = sorted(n for n, count in names.items() if count > 1)
    if dupes:
        raise InputError(f"two jobs write the same output file(s) {dupes[:3]}; give each job its own output")
    counts = {"done": 0, "skipped": 0, "failed": 0}
    results = (out_dir / RESULTS_FILE).open("a", encoding="utf-8")

    def record(job: Job | JobError, status: str, error: str | None = None, seconds: float | None = None) -> None:
        counts[status] += 1
        row = {"line": job.line, "output": output_path(job, out_dir).name, "status": status}
        if error:
            row["error"] = error
            log.warning("job on line %d failed: %s", job.line, error)
        if seconds is not None:
            row["seconds"] = round(seconds, 3)
        results.write(json.dumps(row) + "\n")
        results.flush()

    todo: dict[str, list[Job]] = {"t2a": [], "v2a": [], "a2t": []}
    for job, path in zip(jobs, outputs):
        if isinstance(job, JobError):
            record(job, "failed", job.error)
        elif path.is_file():
            record(job, "skipped")
        elif job.task not in pipe.tasks:
            record(job, "failed", f"this pipeline cannot do {job.task} (it does {', '.join(pipe.tasks)})")
        else:
            todo[job.task].append(job)
    total = sum(len(v) for v in todo.values())
    log.info("jobs: %d to run, %d skipped (output exists), %d failed checks", total, counts["skipped"], counts["failed"])
    bar = progress_bar(total, "jobs", unit="job", enabled=progress)
    started, finished = time.perf_counter(), 0
    try:
        for task, queue in todo.items():
            for start in range(0, len(queue), batch_size):
                batch = queue[start:start + batch_size]
                t0 = time.perf_counter()
                for job, error in _run_batch(pipe, task, batch, out_dir):
                    record(job, "failed" if error else "done", error, seconds=(time.perf_counter() - t0) / len(batch))
                finished += len(batch)
                bar.update(len(batch))
                rate = finished / max(time.perf_counter() - started, 1e-9)
                log.info("jobs: %d/%d done, %.2f jobs/s, ETA %.0f s", finished, total, rate, (total - finished) / rate)
    finally:
        bar.close()
        results.close()
    return counts


_JOB_ERRORS = (C3LLMError, OSError, RuntimeError, ValueError)


def _run_batch(pipe, task: str, batch: Sequence[Job], out_dir: Path) -> list[tuple[Job, str | None]]:
    """Run one batch; when the batch call fails, its jobs run one by one so that only the bad
    ones fail (each with its reason)."""
    try:
        return _write(task, batch, _call(pipe, task, batch), out_dir)
    except _JOB_ERRORS as exc:
        if len(batch) == 1:
            return [(batch[0], str(exc) if isinstance(exc, C3LLMError) else f"{type(exc).__name__}: {exc}")]
    return [result for job in batch for result in _run_batch(pipe, task, [job], out_dir)]


def _call(pipe, task: str, jobs: Sequence[Job]) -> list:
    """One batched SDK call for ``jobs`` (all of ``task``), per-job seeds and durations."""
    seeds, seconds = [j.seed for j in jobs], [j.seconds for j in jobs]
    if task == "a2t":
        return pipe.audio_to_text([j.audio for j in jobs], seed=seeds)
    if task == "t2a":
        return pipe.text_to_audio([j.text for j in jobs], duration=seconds, seed=seeds)
    texts = [j.text for j in jobs]
    if all(t is None for t in texts) or all(t is not None for t in texts):
        return pipe.video_to_audio([j.video for j in jobs], text=None if texts[0] is None else texts,
                                   duration=seconds, seed=seeds)
    return [_call(pipe, task, [j])[0] for j in jobs]  # video with and without text: one call each


def _write(task: str, batch: Sequence[Job], results: list, out_dir: Path) -> list[tuple[Job, str | None]]:
    out = []
    for job, result in zip(batch, results):
        path = output_path(job, out_dir)
        if task == "a2t":
            tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
            tmp.write_text(result + "\n", encoding="utf-8")
            os.replace(tmp, path)  # a killed run leaves no half-written caption
        else:
            result.save(path)  # Audio.save writes a temp file and renames it
        out.append((job, None))
    return out
