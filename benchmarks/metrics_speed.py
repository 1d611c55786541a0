"""Speed of the evaluation metrics on a 2-core CPU (median of several runs).

    python benchmarks/metrics_speed.py [--repeats 5]

Measures: librosa-equivalent onset detection on a 10 s clip; CIDEr-D on 1000 captions with 5
references each; Fréchet distance of 2048-d embeddings (both matrix-square-root routes); the
CondFoleyGen onset metric on 100 clips of 2 s.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import numpy as np
import torch

from c3llm.core.media import Audio
from c3llm.plugins.metrics.frechet import frechet_distance_from_embeddings
from c3llm.plugins.metrics.onset import OnsetConfig, OnsetSync
from c3llm.scoring.cider import cider_d
from c3llm.scoring.signal import detect_onsets

log = logging.getLogger("benchmarks.metrics_speed")


def clicks(rng, seconds, sr=22050):
    y = rng.normal(0, 0.003, int(seconds * sr))
    for t in np.sort(rng.uniform(0.05, seconds - 0.1, size=int(seconds * 2))):
        i = int(t * sr)
        y[i : i + 600] += rng.normal(0, 1, 600) * np.exp(-np.arange(600) / 100) * 0.8
    return y


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)

    y = clicks(rng, 10.0)
    log.info("onset detection, 10 s @ 22.05 kHz: %.1f ms", 1000 * timed(lambda: detect_onsets(y, 22050), args.repeats))

    words = [f"w{i}" for i in range(300)]
    cands = [list(rng.choice(words, size=rng.integers(5, 15))) for _ in range(1000)]
    refs = [[list(rng.choice(words, size=rng.integers(5, 15))) for _ in range(5)] for _ in range(1000)]
    log.info("CIDEr-D, 1000 captions x 5 refs: %.2f s", timed(lambda: cider_d(cands, refs), args.repeats))

    a, b = rng.normal(size=(500, 2048)), rng.normal(0.1, 1.0, size=(500, 2048))
    for method in ("scipy", "eigh"):
        sec = timed(lambda: frechet_distance_from_embeddings(a, b, method=method), 1)
        log.info("Fréchet distance, 2048-d, 500 vs 500 rows, %s: %.2f s", method, sec)

    clips = [Audio(torch.from_numpy(clicks(rng, 2.0)).float()[None], 22050) for _ in range(100)]
    metric = OnsetSync(OnsetConfig())
    log.info("onset acc/AP, 100 clips of 2 s: %.2f s", timed(lambda: metric.compute(clips, clips[::-1]), args.repeats))


if __name__ == "__main__":
    main()
