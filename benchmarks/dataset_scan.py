"""Manifest scan rate of the public dataset readers (media header checks included).

Writes an AudioCaps-layout set of N one-second wavs (plus some broken rows) in a temp
folder and times a full scan; then a VGGSound set of mp4s. Prints the median of several runs.

    python benchmarks/dataset_scan.py [--clips 400]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from c3llm.core.media import Video
from c3llm.plugins.datasets.audiocaps import AudioCaps, AudioCapsConfig
from c3llm.plugins.datasets.vggsound import VGGSound, VGGSoundConfig


def median_scan(make, repeats: int) -> tuple[float, int, int]:
    times = []
    for _ in range(repeats):
        dataset = make()  # a fresh instance: no cached scan
        start = time.perf_counter()
        n = len(dataset)
        times.append(time.perf_counter() - start)
    return statistics.median(times), n, len(dataset.skipped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wave = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
        rows = ["audiocap_id,youtube_id,start_time,caption"]
        (root / "audio" / "train").mkdir(parents=True)
        for i in range(args.clips):
            rows.append(f"{i},clip{i},0,caption {i}")
            if i % 10:  # every tenth clip is missing
                sf.write(str(root / "audio" / "train" / f"clip{i}.wav"), wave, 16000)
        (root / "train.csv").write_text("\n".join(rows) + "\n")
        seconds, n, skipped = median_scan(lambda: AudioCaps(AudioCapsConfig(root=str(root))), args.repeats)
        print(f"audiocaps: {n} usable + {skipped} skipped rows in {seconds * 1000:.0f} ms "
              f"({(n + skipped) / seconds:.0f} rows/s, median of {args.repeats})")

        frames = torch.zeros(10, 32, 32, 3, dtype=torch.uint8)
        lines = []
        for i in range(args.videos):
            lines.append(f"vid{i},0,label,train")
            Video.from_frames(frames, fps=10).save(root / "video" / f"vid{i}_000000.mp4")
            sf.write(str(root / "audio" / f"vid{i}_000000.wav"), wave, 16000)
        (root / "vggsound.csv").write_text("\n".join(lines) + "\n")
        seconds, n, skipped = median_scan(lambda: VGGSound(VGGSoundConfig(root=str(root))), args.repeats)
        print(f"vggsound: {n} clips (mp4 open + wav header) in {seconds * 1000:.0f} ms "
              f"({n / seconds:.0f} clips/s, median of {args.repeats})")


if __name__ == "__main__":
    main()
