"""Progress bars for long work: shown on a terminal, silent in logs and CI.

Long stages also log their progress through :mod:`logging`, so a run redirected to a file
still says where it is without a wall of carriage returns.
"""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int, desc: str, *, unit: str = "it", initial: int = 0, enabled: bool = True) -> Any:
    """A tqdm bar when ``enabled`` and stderr is a terminal; otherwise a disabled one."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                disable=not (enabled and sys.stderr.isatty()))
