"""Seconds per 10 s clip for the condition encoders (median of several runs).

    python benchmarks/encoder_features.py [--runs 5] [--frame-size 112]

clap-tiny on a 10 s 16 kHz stereo clip; rgb-flow (handcrafted and random-weight resnet18) on a
10 s 25 fps 128x128 video already decoded in memory (decoding is timed separately).
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from c3llm.core.media import Audio, Video, load_video
from c3llm.plugins.encoders.clap import ClapEncoder, ClapEncoderConfig
from c3llm.plugins.encoders.rgb_flow import RgbFlowEncoder, RgbFlowEncoderConfig


def _median_seconds(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _video(seconds: float = 10.0, fps: float = 25.0, size: int = 128) -> Video:
    n = round(seconds * fps)
    frames = torch.zeros(n, size, size, 3, dtype=torch.uint8)
    for i in range(n):
        x = int((size - 24) * (0.5 + 0.5 * math.sin(i / fps * 2)))
        frames[i, 40:64, x:x + 24, 0] = 255
    return Video.from_frames(frames, fps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frame-size", type=int, default=112)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    audio = Audio(0.1 * torch.randn(2, 160_000), 16_000)
    clap = ClapEncoder(ClapEncoderConfig(preset="tiny"))
    video = _video()
    rows = [("clap tiny (10 s, 16 kHz stereo)", _median_seconds(lambda: clap([audio]), args.runs))]
    for backbone in ("handcrafted", "resnet18"):
        enc = RgbFlowEncoder(RgbFlowEncoderConfig(backbone=backbone, frame_size=args.frame_size))
        rows.append((f"rgb-flow {backbone} ({args.frame_size}px, {enc.flow_method})",
                     _median_seconds(lambda: enc([video]), args.runs)))
    with tempfile.TemporaryDirectory() as tmp:
        path = video.save(Path(tmp) / "clip.mp4")
        rows.append(("load_video (10 s, 25 fps, 128x128 mp4)", _median_seconds(lambda: load_video(path), args.runs)))
    print(f"torch threads: {torch.get_num_threads()}, runs: {args.runs}")
    for name, seconds in rows:
        print(f"{name:55s} {seconds:7.3f} s per 10 s clip")


if __name__ == "__main__":
    main()
