"""Dense optical flow between two grey frames with OpenCV: TV-L1 or Farnebäck.

TV-L1 (``cv2.optflow.DualTVL1OpticalFlow``, what SpecVQGAN/BN-Inception features used) needs
the opencv-contrib build; the plain ``opencv-python-headless`` wheel has only Farnebäck.
``"auto"`` takes TV-L1 when present and logs which one runs.
"""

from __future__ import annotations

import logging

import numpy as np

from c3llm.core.errors import UnavailableError

log = logging.getLogger(__name__)


def tvl1_available() -> bool:
    import cv2

    return hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create")


def resolve_method(method: str) -> str:
    """``"auto"`` -> ``"tvl1"`` or ``"farneback"``; refuse ``"tvl1"`` without opencv-contrib."""
    if method == "auto":
        method = "tvl1" if tvl1_available() else "farneback"
        log.info("optical flow: %s%s", method, "" if method == "tvl1" else " (TV-L1 needs opencv-contrib)")
        return method
    if method == "tvl1" and not tvl1_available():
        raise UnavailableError(
            "flow = 'tvl1' needs cv2.optflow from opencv-contrib-python(-headless), which is not "
            "installed; install it in place of opencv-python-headless, or use flow = 'farneback' / 'auto'."
        )
    return method


class OpticalFlow:
    """``flow(prev, next) -> (H, W, 2)`` float32 pixel displacement (dx, dy) of ``prev`` into ``next``."""

    def __init__(self, method: str = "auto"):
        import cv2

        self.method = resolve_method(method)
        self._tvl1 = cv2.optflow.DualTVL1OpticalFlow_create() if self.method == "tvl1" else None

    def __call__(self, prev: np.ndarray, next_: np.ndarray) -> np.ndarray:
        """:param prev: ``(H, W)`` uint8 grey. :param next_: ``(H, W)`` uint8 grey."""
        import cv2

        if self._tvl1 is not None:
            return self._tvl1.calc(prev, next_, None)
        return cv2.calcOpticalFlowFarneback(
            prev, next_, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3,
            poly_n=5, poly_sigma=1.2, flags=0,
        )

    def many(self, prev: np.ndarray, next_: np.ndarray, *, workers: int = 1) -> np.ndarray:
        """Flow of each pair: ``(P, H, W)`` uint8 x2 -> ``(P, H, W, 2)`` float32.

        Pairs run on ``workers`` threads (OpenCV releases the GIL); each pair's flow is
        exactly what :meth:`__call__` gives for it.
        """
        out = np.empty((*prev.shape, 2), np.float32)
        if len(prev) == 0:
            return out

        def one(i: int) -> None:
            out[i] = self(prev[i], next_[i])

        if workers <= 1 or len(prev) == 1:
            for i in range(len(prev)):
                one(i)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(workers, len(prev))) as pool:
                list(pool.map(one, range(len(prev))))
        return out
