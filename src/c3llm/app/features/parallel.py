"""``prepare`` over worker processes: batches decoded and encoded in parallel, written here.

Feature extraction is CPU-bound Python + torch + OpenCV work per clip; one process keeps about
one core busy, so a 2-core machine prepares ~2x the clips per second with two workers (each
with ``torch threads / jobs`` threads, so the cores are not oversubscribed).

The parent process keeps every cache and report operation: it plans each batch (what the
cache lacks), hands ``(batch, plan)`` to a worker, and applies the outcomes (writes entries,
records failures) strictly in batch order as they come back. So the cache, the index and the
report equal a serial run's, and an interrupted run resumes as one does (entries are written
batch by batch; at most ``2 * jobs`` batches are in flight).

Workers are forked (they inherit the loaded model; nothing is pickled but samples and
results). Where ``fork`` is unavailable the run is serial, with a warning.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import torch

log = logging.getLogger(__name__)

#: The ``_Work`` a forked worker computes with (set in the parent just before forking).
_WORK: Any = None


def run_in_processes(work: Any, batches: Sequence[Sequence[Any]], jobs: int,
                     done: Callable[[Sequence[Any]], None]) -> None:
    """Plan, compute (in ``jobs`` processes) and apply every batch; ``done(batch)`` after each."""
    global _WORK
    if "fork" not in multiprocessing.get_all_start_methods():
        log.warning("prepare: jobs=%d needs the 'fork' start method, absent here; running serially", jobs)
        for batch in batches:
            work.run(batch)
            done(batch)
        return
    threads = max(1, torch.get_num_threads() // jobs)
    _WORK = work
    try:
        with multiprocessing.get_context("fork").Pool(jobs, initializer=_start_worker, initargs=(threads,)) as pool:
            pending: deque = deque()
            for batch in batches:
                pending.append((batch, pool.apply_async(_compute, (batch, work.plan(batch)))))
                if len(pending) >= 2 * jobs:
                    _finish(work, *pending.popleft(), done)
            while pending:
                _finish(work, *pending.popleft(), done)
    finally:
        _WORK = None


def _finish(work: Any, batch: Sequence[Any], result: Any, done: Callable[[Sequence[Any]], None]) -> None:
    work.apply(_from_wire(result.get()))
    done(batch)


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _compute(batch: Sequence[Any], todo: dict[str, list[str]]) -> list[tuple[str, str, str, Any]]:
    return _to_wire(_WORK.compute(batch, todo))


def _to_wire(outcomes: list[tuple[str, str, str, Any]]) -> list[tuple[str, str, str, Any]]:
    """Tensors as numpy arrays: pickled by value (torch's own reduction would pass each through a
    shared-memory file descriptor, thousands per run)."""
    return [(a, k, i, {n: t.numpy() for n, t in v.items()} if a == "put" else v) for a, k, i, v in outcomes]


def _from_wire(outcomes: list[tuple[str, str, str, Any]]) -> list[tuple[str, str, str, Any]]:
    return [(a, k, i, {n: torch.from_numpy(t) for n, t in v.items()} if a == "put" else v) for a, k, i, v in outcomes]
