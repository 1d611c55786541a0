"""Train the tiny EnCodec on synthetic audio; report held-out quality and 10 s encode/decode time.

Usage (2-core CPU)::

    python benchmarks/codec_reconstruction.py --steps 1500 --out runs/codec_tiny
    python benchmarks/codec_reconstruction.py --steps 1500 --ratios 8 5 4 2   # 50 Hz variant

Prints one JSON object: the architecture, training seconds, quality before/after training
(mel distance, SI-SNR on held-out synthetic clips, codebook usage), and the median of
``--repeats`` timings of encode and decode for 10 s of audio.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time

import torch

from c3llm.app.training.codec import CodecTrainConfig, synthetic_clips, train_codec
from c3llm.core.roles import Decoder
from c3llm.plugins.decoders.encodec import EncodecCodec, EncodecCodecConfig


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def codebook_usage(codec: Decoder, clips: list[torch.Tensor]) -> list[int]:
    """Distinct entries used per codebook over the held-out clips."""
    codes = torch.cat([codec.encode(c[None]) for c in clips], dim=-1)  # (1, Q, S_total)
    return [int(codes[0, q].unique().numel()) for q in range(codes.shape[1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--segment-seconds", type=float, default=0.5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ratios", type=int, nargs="+", default=None, help="upsampling ratios (default: preset)")
    parser.add_argument("--codebook-size", type=int, default=None)
    parser.add_argument("--n-filters", type=int, default=None)
    parser.add_argument("--train-clips", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared 2-core CPU")
    parser.add_argument("--out", default="runs/codec_tiny")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    codec = EncodecCodec(EncodecCodecConfig(
        preset="tiny", upsampling_ratios=tuple(args.ratios) if args.ratios else None,
        codebook_size=args.codebook_size, n_filters=args.n_filters,
    ))
    train = synthetic_clips(args.train_clips, 3.0, codec.sample_rate, seed=1)
    held_out = synthetic_clips(8, 2.0, codec.sample_rate, seed=12345)
    config = CodecTrainConfig(steps=args.steps, batch_size=args.batch_size, segment_seconds=args.segment_seconds,
                              lr=args.lr, log_every=max(1, args.steps // 10))
    report = train_codec(codec, train, config, args.out, eval_data=held_out, progress=False)

    ten_seconds = torch.randn(1, codec.channels, 10 * codec.sample_rate) * 0.1
    codes = codec.encode(ten_seconds)
    result = {
        "architecture": codec.arch,
        "parameters": sum(p.numel() for p in codec.parameters()),
        "frame_rate_hz": codec.frame_rate,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "train_seconds": round(report["train_seconds"], 1),
        "quality_before": report["quality_before"],
        "quality_after": report["quality_after"],
        "codebook_usage_held_out": codebook_usage(codec, held_out),
        "encode_10s_ms": round(1000 * median_seconds(lambda: codec.encode(ten_seconds), args.repeats), 1),
        "decode_10s_ms": round(1000 * median_seconds(lambda: codec.decode(codes), args.repeats), 1),
        "threads": args.threads,
        "checkpoint": report["checkpoint"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
