"""Progress of long work: a bar on a terminal, and periodic log lines everywhere.

A run whose output goes to a file (CI, ``nohup``, a cluster job) sees no bar, so every
:func:`progress_bar` also logs ``done/total, rate, ETA`` through :mod:`logging` at most every
``log_every`` seconds (and once at the end): a stage never goes quiet for minutes.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger("c3llm.progress")

#: seconds between progress log lines (a stage logs at least this often while it advances)
LOG_EVERY_SECONDS = 30.0


class Progress:
    """A tqdm bar (terminal only) plus periodic log lines; used like a tqdm bar."""

    def __init__(self, total: int, desc: str, *, unit: str, initial: int, enabled: bool, log_every: float):
        from tqdm.auto import tqdm

        self.total, self.desc, self.unit, self.log_every = total, desc, unit, log_every
        self.done = self._start = initial
        self._started = self._logged = time.monotonic()
        self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                         disable=not (enabled and sys.stderr.isatty()))

    def update(self, n: int = 1) -> None:
        self.done += n
        self._bar.update(n)
        now = time.monotonic()
        if now - self._logged >= self.log_every:
            self._logged = now
            self._log(now)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        self._bar.set_postfix(*args, **kwargs)

    def close(self) -> None:
        if self.done > self._start and time.monotonic() - self._started >= self.log_every:
            self._log(time.monotonic())
        self._bar.close()

    def line(self, now: float | None = None) -> str:
        """``desc: done/total unit (pct), rate unit/s, ETA``."""
        now = time.monotonic() if now is None else now
        rate = (self.done - self._start) / max(now - self._started, 1e-9)
        pct = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        eta = f", ETA {(self.total - self.done) / rate:.0f} s" if rate > 0 and self.total > self.done else ""
        return f"{self.desc}: {self.done}/{self.total} {self.unit}{pct}, {rate:.3g} {self.unit}/s{eta}"

    def _log(self, now: float) -> None:
        log.info("%s", self.line(now))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(total: int, desc: str, *, unit: str = "it", initial: int = 0, enabled: bool = True,
                 log_every: float = LOG_EVERY_SECONDS) -> Progress:
    """A bar when ``enabled`` and stderr is a terminal, and a log line every ``log_every`` seconds
    (``enabled=False`` silences the bar only; the log lines follow the logging level)."""
    return Progress(total, desc, unit=unit, initial=initial, enabled=enabled, log_every=log_every)
