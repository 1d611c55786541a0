"""Thread policy on a busy machine: the same training work under different thread settings,
side by side in one run (interleaved repeats), with the load stated.

    python benchmarks/thread_policy.py [--repeats 3] [--steps 30]

Each setting runs in a fresh process (OpenMP reads its environment once, at load): a
0.8 M-parameter transformer (the demo LM's size) does ``--steps`` forward + backward steps
on batches of 16 x 160 tokens. Settings: torch's default thread count with OpenMP's default
(spinning) wait policy; the same with ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep instead
of spinning); one thread. Prints the median wall time of each and its ratio to the fastest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

WORK = r"""
import time, torch
torch.manual_seed(0)
layer = torch.nn.TransformerEncoderLayer(128, 4, 384, dropout=0.1, batch_first=True)
model = torch.nn.TransformerEncoder(layer, 4)
opt = torch.optim.AdamW(model.parameters(), 1e-3)
x = torch.randn(16, 160, 128)
for _ in range(3):
    model(x).pow(2).mean().backward()
started = time.perf_counter()
for _ in range(STEPS):
    opt.zero_grad()
    model(x).pow(2).mean().backward()
    opt.step()
print(time.perf_counter() - started, torch.get_num_threads())
"""

SETTINGS = {
    "default threads, OpenMP default wait": {},
    "default threads, OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}


def run(env: dict[str, str], steps: int) -> tuple[float, int]:
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", WORK.replace("STEPS", str(steps))], env=full, capture_output=True,
                         text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    threads: dict[str, int] = {}
    loads = []
    for _ in range(args.repeats):
        for name, env in SETTINGS.items():
            loads.append(os.getloadavg()[0])
            seconds, threads[name] = run(env, args.steps)
            times[name].append(seconds)
    best = min(statistics.median(v) for v in times.values())
    print(f"cpus {os.cpu_count()}, load average during the runs {min(loads):.1f}..{max(loads):.1f} "
          f"(started {time.strftime('%H:%M:%S')})")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<44} threads {threads[name]}  median {median:6.2f} s  x{median / best:4.2f}  "
              f"(runs: {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
