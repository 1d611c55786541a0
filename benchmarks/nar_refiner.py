"""Speed of the `nar` refiner: greedy refine() of a 10 s clip and one training step.

Paper setting: EnCodec 24 kHz at 75 frames/s, Q = 2 (the refiner adds codebook 2), K = 1024,
condition from Gemma-2B (hidden size 2048). Prints the median of several runs.

    python benchmarks/nar_refiner.py [--dim 512 --layers 6 --heads 8] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from c3llm.plugins.refiners.nar import NARRefiner, NARRefinerConfig


def median_seconds(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--codebooks", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--cond-frames", type=int, default=32, help="condition length (caption tokens)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    config = NARRefinerConfig(num_codebooks=args.codebooks, cardinality=1024, cond_dim=2048, dim=args.dim,
                              num_layers=args.layers, num_heads=args.heads, dropout=0.1)
    refiner = NARRefiner(config).to(device)
    frames = round(args.seconds * 75)
    b = args.batch
    cond = torch.randn(b, args.cond_frames, 2048, device=device)
    cond_mask = torch.ones(b, args.cond_frames, dtype=torch.bool, device=device)
    codes = torch.randint(0, 1024, (b, args.codebooks, frames), device=device)
    code_mask = torch.ones(b, frames, dtype=torch.bool, device=device)
    optim = torch.optim.AdamW(refiner.parameters(), lr=1e-4)

    def step() -> None:
        loss = refiner.loss(cond, cond_mask, codes, code_mask)
        optim.zero_grad()
        loss.backward()
        optim.step()

    params = sum(p.numel() for p in refiner.parameters()) / 1e6
    refine_s = median_seconds(lambda: refiner.refine(cond[:1], cond_mask[:1], codes[:1, :1], code_mask[:1]),
                              args.repeats, sync)
    refine_b = median_seconds(lambda: refiner.refine(cond, cond_mask, codes[:, :1], code_mask), args.repeats, sync)
    train_s = median_seconds(step, args.repeats, sync)
    print(f"device={device} torch_threads={torch.get_num_threads()} params={params:.1f}M "
          f"dim={args.dim} layers={args.layers} Q={args.codebooks} frames={frames} cond={args.cond_frames}")
    print(f"refine 1 clip ({args.seconds:g} s audio): {refine_s * 1000:.0f} ms (median of {args.repeats})")
    print(f"refine batch of {b}: {refine_b * 1000:.0f} ms")
    print(f"train step, batch {b}: {train_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
