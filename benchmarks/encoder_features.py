"""Seconds per 10 s clip for the condition encoders (median of several runs).

    python benchmarks/encoder_features.py [--runs 5] [--frame-size 112]
    python benchmarks/encoder_features.py --compare --runs 3      # rgb-flow before/after
    python benchmarks/encoder_features.py --prepare 8 --runs 2    # prepare clips/s, jobs 1 vs 2

clap-tiny on a 10 s 16 kHz stereo clip; rgb-flow (handcrafted and random-weight resnet18) on a
10 s 25 fps 128x128 video already decoded in memory (decoding is timed separately).
``--compare`` times the frozen pre-issue-17 rgb-flow path (tests/encoders/rgb_flow_reference.py)
and today's, interleaved in one process, and prints the largest feature difference;
``--prepare N`` runs ``prepare_features`` (video kind, handcrafted rgb-flow) on N 10 s mp4 files
with 1 and 2 worker processes, alternating, a fresh cache each time.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
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


def _compare(runs: int, frame_size: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "encoders"))
    from rgb_flow_reference import reference_encode

    video = _video()
    for extractor in ("handcrafted", "resnet18"):
        enc = RgbFlowEncoder(RgbFlowEncoderConfig(extractor=extractor, frame_size=frame_size))
        new, ref = enc.encode_one(video), reference_encode(enc, video)  # also the warm-up
        before, after = [], []
        for _ in range(runs):  # interleaved: both see the same load
            for fn, into in ((lambda: reference_encode(enc, video), before), (lambda: enc.encode_one(video), after)):
                start = time.perf_counter()
                fn()
                into.append(time.perf_counter() - start)
        b, a = statistics.median(before), statistics.median(after)
        print(f"rgb-flow {extractor:11s} before {b:7.3f} s  after {a:7.3f} s  x{b / a:5.2f}  "
              f"max |diff| {(new - ref).abs().max().item():.2e} (max |feature| {ref.abs().max().item():.2f})")


class _VideoOnlyModel:
    """What prepare needs of a model, with only a video encoder."""

    def __init__(self, encoder):
        self.decoder, self.encoders = None, {"video": encoder}

    def encode_media(self, modality, media):
        return [self.encoders[modality].encode_one(item) for item in media]


def _prepare(clips: int, runs: int, frame_size: int) -> None:
    from c3llm.app.features.prepare import prepare_features
    from c3llm.core.roles import Sample

    with tempfile.TemporaryDirectory() as tmp:
        path = _video().save(Path(tmp) / "clip.mp4")
        samples = [Sample(id=f"c{i}", split="train", video_path=path) for i in range(clips)]
        model = _VideoOnlyModel(RgbFlowEncoder(RgbFlowEncoderConfig(frame_size=frame_size)))
        rates = {1: [], 2: []}
        for run in range(runs):
            for jobs in rates:
                start = time.perf_counter()
                prepare_features(model, samples, Path(tmp) / f"cache{run}-{jobs}", kinds=("video",), batch_size=1,
                                 progress=False, jobs=jobs)
                rates[jobs].append(clips / (time.perf_counter() - start))
        for jobs, values in rates.items():
            print(f"prepare (handcrafted rgb-flow, {clips} x 10 s mp4), jobs={jobs}: "
                  f"{statistics.median(values):.2f} clips/s  (runs: {', '.join(f'{v:.2f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frame-size", type=int, default=112)
    parser.add_argument("--compare", action="store_true", help="rgb-flow before/after the issue-17 speed-up")
    parser.add_argument("--prepare", type=int, default=0, metavar="N", help="prepare clips/s with 1 and 2 jobs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"torch threads: {torch.get_num_threads()}, runs: {args.runs}, load: {open('/proc/loadavg').read().strip()}")
    if args.compare or args.prepare:
        if args.compare:
            _compare(args.runs, args.frame_size)
        if args.prepare:
            _prepare(args.prepare, args.runs, args.frame_size)
        print(f"load after: {open('/proc/loadavg').read().strip()}")
        return

    audio = Audio(0.1 * torch.randn(2, 160_000), 16_000)
    clap = ClapEncoder(ClapEncoderConfig(preset="tiny"))
    video = _video()
    rows = [("clap tiny (10 s, 16 kHz stereo)", _median_seconds(lambda: clap([audio]), args.runs))]
    for backbone in ("handcrafted", "resnet18"):
        enc = RgbFlowEncoder(RgbFlowEncoderConfig(extractor=backbone, frame_size=args.frame_size))
        rows.append((f"rgb-flow {backbone} ({args.frame_size}px, {enc.flow_method})",
                     _median_seconds(lambda: enc([video]), args.runs)))
    with tempfile.TemporaryDirectory() as tmp:
        path = video.save(Path(tmp) / "clip.mp4")
        rows.append(("load_video (10 s, 25 fps, 128x128 mp4)", _median_seconds(lambda: load_video(path), args.runs)))
    for name, seconds in rows:
        print(f"{name:55s} {seconds:7.3f} s per 10 s clip")


if __name__ == "__main__":
    main()
