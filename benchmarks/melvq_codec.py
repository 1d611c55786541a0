"""Fit the ``melvq`` codec; report fit time, held-out quality and 10 s encode/decode time.

Usage (2-core CPU)::

    python benchmarks/melvq_codec.py                              # 64 synthetic 3 s clips
    python benchmarks/melvq_codec.py --world runs/world            # a synthetic world's train audio
    python benchmarks/melvq_codec.py --griffin-lim-iters 64

Prints one JSON object: the config, fit seconds, held-out log-mel distance before/after
fitting, codebook usage on the held-out clips, and the median of ``--repeats`` timings of
encode and decode (Griffin-Lim) for 10 s of audio.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
from codec_reconstruction import (  # the sibling benchmark (same folder)
    codebook_usage,
    median_seconds,
)

from c3llm.app.training.codec import evaluate_codec, synthetic_clips
from c3llm.core.media import load_audio
from c3llm.plugins.decoders.melvq import MelVQCodec, MelVQCodecConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=Path, default=None, help="fit on <world>/audio/train_*.wav")
    parser.add_argument("--train-clips", type=int, default=64, help="synthetic clips when --world is not given")
    parser.add_argument("--codebook-size", type=int, default=256)
    parser.add_argument("--griffin-lim-iters", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared 2-core CPU")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    config = MelVQCodecConfig(codebook_size=args.codebook_size, griffin_lim_iters=args.griffin_lim_iters)
    codec = MelVQCodec(config)
    if args.world is not None:
        train = [load_audio(p).to(codec.sample_rate, 1).waveform for p in sorted((args.world / "audio").glob("train_*.wav"))]
    else:
        train = synthetic_clips(args.train_clips, 3.0, codec.sample_rate, seed=0)
    held_out = synthetic_clips(8, 2.0, codec.sample_rate, seed=7919)
    before = evaluate_codec(codec, held_out)
    start = time.perf_counter()
    fit = codec.fit(train)
    fit_seconds = time.perf_counter() - start
    after = evaluate_codec(codec, held_out)
    ten = synthetic_clips(1, 10.0, codec.sample_rate, seed=1)[0][None]  # (1, 1, T)
    ten_codes = codec.encode(ten)
    print(json.dumps({
        "config": config.architecture() | {"griffin_lim_iters": config.griffin_lim_iters},
        "train_clips": len(train), "fit_frames": fit["frames"], "fit_seconds": round(fit_seconds, 2),
        "held_out_mel_distance": {"before": round(before["mel_distance"], 3), "after": round(after["mel_distance"], 3)},
        "codebook_usage": codebook_usage(codec, held_out),
        "encode_10s_seconds": round(median_seconds(lambda: codec.encode(ten), args.repeats), 4),
        "decode_10s_seconds": round(median_seconds(lambda: codec.decode(ten_codes), args.repeats), 4),
        "threads": args.threads,
    }, indent=2))


if __name__ == "__main__":
    main()
