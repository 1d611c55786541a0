"""Batch jobs from a file: batches, per-line failures, resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from c3llm import sdk
from c3llm.app.jobs import RESULTS_FILE, Job, JobError, read_jobs, run_jobs
from c3llm.core.errors import InputError

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return sdk.Pipeline.from_config(TINY)


def write_jobs(path: Path, count: int, broken: dict[int, dict]) -> Path:
    lines = []
    for i in range(count):
        lines.append(json.dumps(broken.get(i, {"text": f"a bell rings {i % 3 + 1} times", "seconds": 0.2,
                                               "output": f"clip{i:03d}"})))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_two_hundred_jobs_run_in_batches_report_broken_lines_and_resume(pipe, tmp_path):
    broken = {17: {"text": "   "}, 120: {"video": "missing.mp4"}}
    jobs = read_jobs(write_jobs(tmp_path / "jobs.jsonl", 200, broken))
    errors = [j for j in jobs if isinstance(j, JobError)]
    assert [(e.line, e.error[:20]) for e in errors] == [(18, "text must be non-emp"), (121, "video file not found")]

    calls = []
    original = pipe.text_to_audio

    def interrupted(*args, **kwargs):  # a kill after the third batch
        calls.append(len(args[0]))
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    pipe.text_to_audio = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            run_jobs(pipe, jobs, tmp_path / "out", batch_size=32, progress=False)
    finally:
        del pipe.text_to_audio
    assert calls == [32, 32, 32, 32]
    finished = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.wav")}
    assert len(finished) == 96 and not list((tmp_path / "out").glob(".*partial*"))

    counts = run_jobs(pipe, jobs, tmp_path / "out", batch_size=32, progress=False)
    assert counts == {"done": 102, "skipped": 96, "failed": 2}
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.wav") if p.name in finished} == finished
    assert len(list((tmp_path / "out").glob("*.wav"))) == 198
    rows = [json.loads(line) for line in (tmp_path / "out" / RESULTS_FILE).read_text().splitlines()]
    failed = sorted({r["line"] for r in rows if r["status"] == "failed"})
    assert failed == [18, 121]
    audio = sdk.load_audio(tmp_path / "out" / "clip005.wav")
    assert abs(audio.duration - 0.2) < 0.05


def test_a_job_that_fails_inside_a_batch_fails_alone(pipe, tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    path = tmp_path / "jobs.csv"
    path.write_text("text,audio,seconds,seed,output\n"
                    "a knock,,0.2,1,knock\n"
                    ",bad.wav,,,caption-bad\n"
                    "a beep,,0.2,2,beep\n")
    counts = run_jobs(pipe, read_jobs(path), tmp_path / "out", batch_size=4, progress=False)
    assert counts == {"done": 2, "skipped": 0, "failed": 1}
    rows = {r["line"]: r for r in map(json.loads, (tmp_path / "out" / RESULTS_FILE).read_text().splitlines())}
    assert rows[3]["status"] == "failed" and "bad.wav" in rows[3]["error"]
    assert (tmp_path / "out" / "knock.wav").is_file() and (tmp_path / "out" / "beep.wav").is_file()


def test_per_job_seeds_make_outputs_independent_of_batching(pipe, tmp_path):
    path = write_jobs(tmp_path / "jobs.jsonl", 5, {})
    run_jobs(pipe, read_jobs(path), tmp_path / "a", batch_size=5, progress=False)
    run_jobs(pipe, read_jobs(path), tmp_path / "b", batch_size=1, progress=False)
    for name in ("clip000.wav", "clip004.wav"):
        a, b = sdk.load_audio(tmp_path / "a" / name), sdk.load_audio(tmp_path / "b" / name)
        assert torch.allclose(a.waveform, b.waveform, atol=1e-4)


@pytest.mark.parametrize(("row", "phrase"), [
    ({"text": "x", "output": "../escape"}, "plain file name"),
    ({"text": "x", "seconds": "nan"}, "positive number"),
    ({"text": "x", "colour": "red"}, "unknown field"),
    ({}, "nothing to do"),
    ({"text": "x", "audio": "a.wav"}, "audio file not found"),
])
def test_bad_job_lines_are_reported_not_run(tmp_path, row, phrase):
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps(row) + "\nnot json\n")
    first, second = read_jobs(path)
    assert isinstance(first, JobError) and phrase in first.error and first.line == 1
    assert isinstance(second, JobError) and "not JSON" in second.error
    assert not isinstance(first, Job)


def test_unusable_jobs_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_jobs(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="holds no jobs"):
        read_jobs(tmp_path / "empty.jsonl")
    (tmp_path / "bad.csv").write_text("prompt,seconds\nx,1\n")
    with pytest.raises(InputError, match="unknown column"):
        read_jobs(tmp_path / "bad.csv")
