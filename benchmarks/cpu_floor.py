"""The machine's floor for decoding, measured in one run: what the memory and the matrix
kernels can do at best, so a decode speed can be stated as a ratio to it.

- **stream**: bandwidth of reading a large tensor once (``sum`` of ``--mb`` MB of float32) and
  of copying it (read + write), in GB/s. Decoding one token reads every weight once, so
  ``bytes of weights read per token / stream GB/s`` is the s/token no decoder can beat.
- **GEMV**: ``(1, n) @ (n, m)^T`` (``F.linear`` of one row), in GB/s of weights read,
  bfloat16 and float32: what one decoding step's matrix products reach.
- **GEMM**: ``(512, n) @ (n, n)``, in GFLOP/s, bfloat16 and float32: what a prompt's
  prefill (or a big batch) reaches.

Each figure is the median of ``--repeats`` timed runs after a warm-up; the load
(``/proc/loadavg``) is printed with them, since other jobs share the cores. Other benchmarks
call :func:`measure` in their own process (same threads, same moment)::

    python benchmarks/cpu_floor.py [--threads 1] [--mb 256] [--repeats 5]
"""

from __future__ import annotations

import os

# OpenMP reads this once, at load: idle threads sleep instead of spinning, which on a busy
# machine is 6x faster at 2 threads (BENCHMARKS.md, "Thread policy").
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def load() -> str:
    """``/proc/loadavg``'s 1/5/15-minute loads (``"n/a"`` where there is none)."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (page faults, kernel selection)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def stream(mb: int = 256, repeats: int = 5) -> dict[str, float]:
    """GB/s of reading (``sum``) and of copying (read + write) ``mb`` MB of float32."""
    x = torch.rand(mb * 2**20 // 4)
    y = torch.empty_like(x)
    nbytes = x.numel() * 4
    read = _median_seconds(lambda: x.sum(), repeats)
    copy = _median_seconds(lambda: y.copy_(x), repeats)
    return {"read_GBps": nbytes / read / 1e9, "copy_GBps": 2 * nbytes / copy / 1e9}


def gemv(dtype: torch.dtype, mb: int = 256, repeats: int = 5) -> float:
    """GB/s of weights read by one-row ``F.linear`` over ``mb`` MB of ``dtype`` weights."""
    n = 2048
    m = mb * 2**20 // (n * torch.finfo(dtype).bits // 8)
    w = torch.randn(m, n).to(dtype)
    x = torch.randn(1, n).to(dtype)
    seconds = _median_seconds(lambda: F.linear(x, w), repeats)
    return w.numel() * w.element_size() / seconds / 1e9


def gemm(dtype: torch.dtype, n: int = 1024, rows: int = 512, repeats: int = 5) -> float:
    """GFLOP/s of ``(rows, n) @ (n, n)`` in ``dtype``."""
    a = torch.randn(rows, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    seconds = _median_seconds(lambda: a @ b, repeats)
    return 2 * rows * n * n / seconds / 1e9


def measure(mb: int = 256, repeats: int = 5) -> dict[str, float | str | int]:
    """All floor figures at the current thread count, with the load before and after."""
    before = load()
    out: dict[str, float | str | int] = {"threads": torch.get_num_threads(), "load_before": before}
    out.update(stream(mb, repeats))
    out["gemv_fp32_GBps"] = gemv(torch.float32, mb, repeats)
    out["gemv_bf16_GBps"] = gemv(torch.bfloat16, mb, repeats)
    out["gemm_fp32_GFLOPs"] = gemm(torch.float32, repeats=repeats)
    out["gemm_bf16_GFLOPs"] = gemm(torch.bfloat16, repeats=repeats)
    out["load_after"] = load()
    return out


def describe(floor: dict) -> str:
    return (f"stream read {floor['read_GBps']:.1f} GB/s, copy {floor['copy_GBps']:.1f} GB/s; "
            f"GEMV fp32 {floor['gemv_fp32_GBps']:.1f} GB/s, bf16 {floor['gemv_bf16_GBps']:.1f} GB/s; "
            f"GEMM fp32 {floor['gemm_fp32_GFLOPs']:.1f} GFLOP/s, bf16 {floor['gemm_bf16_GFLOPs']:.1f} GFLOP/s "
            f"({floor['threads']} threads, load {floor['load_before']} -> {floor['load_after']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--mb", type=int, default=256, help="MB of weights / data per figure")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    floor = measure(args.mb, args.repeats)
    print(describe(floor))
    print(json.dumps(floor))


if __name__ == "__main__":
    main()
