"""Time generating the synthetic world (default size unless told otherwise).

    python benchmarks/synthetic_world.py --runs 3
    python benchmarks/synthetic_world.py --runs 3 --num-train 60 --num-test 6 --num-test-novel 6

Prints the median wall time over ``--runs`` generations into fresh temporary folders, the
throughput, and the world's size on disk.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path

import attrs

from c3llm.plugins.datasets.synthetic import WorldConfig, generate_world

log = logging.getLogger("benchmarks.synthetic_world")


def disk_bytes(root: Path) -> int:
    """Bytes on disk, counting hard-linked files once."""
    seen, total = set(), 0
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    defaults = WorldConfig()
    for name in ("num_train", "num_test", "num_test_novel"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--duration", type=float, default=defaults.duration)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    config = attrs.evolve(defaults, num_train=args.num_train, num_test=args.num_test,
                          num_test_novel=args.num_test_novel, duration=args.duration)
    times, size, clips = [], 0, 0
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            world = generate_world(config, Path(tmp) / "world", progress=False)
            times.append(world.seconds)
            size, clips = disk_bytes(world.root), sum(world.counts.values())
    median = statistics.median(times)
    log.info("clips=%d duration=%.1fs runs=%d: median %.1f s (all: %s), %.1f clips/s, %.1f MB on disk",
             clips, config.duration, args.runs, median, ", ".join(f"{t:.1f}" for t in times),
             clips / median, size / 1e6)


if __name__ == "__main__":
    main()
