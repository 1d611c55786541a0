"""Long work logs its progress (done/total, rate, ETA) even when no terminal shows a bar."""

from __future__ import annotations

import logging

from c3llm.core import progress


def test_progress_logs_periodically_with_rate_and_eta(monkeypatch, caplog):
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="c3llm.progress"):
        bar = progress.progress_bar(100, "prepare", unit="clip", enabled=False, log_every=30.0)
        for _ in range(10):
            clock[0] += 5.0
            bar.update(5)
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    # one line after 30 s of work, none before the next 30 s, and one when it stops
    assert lines == ["prepare: 30/100 clip (30 %), 1 clip/s, ETA 70 s", "prepare: 50/100 clip (50 %), 1 clip/s, ETA 50 s"]


def test_short_work_stays_quiet(caplog):
    with caplog.at_level(logging.INFO, logger="c3llm.progress"):
        with progress.progress_bar(3, "quick", enabled=False) as bar:
            bar.update(3)
    assert caplog.records == []
