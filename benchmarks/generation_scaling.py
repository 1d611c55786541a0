"""Generation cost against length, batch and guidance, on the tiny pipeline (configs/tiny.toml).

- **length**: text-to-audio at 8 / 16 / 32 s (one caption, seed 0), timed per stage: the
  LM (codebook-1 tokens, window by window past ``generate.window_seconds``), the refiner
  (codebooks 2..Q, per window) and the codec (decoding, in cross-faded chunks). Linear
  cost means 32 s takes 4x what 8 s takes.
- **batch**: 16 captions (per-item seeds 0..15) as one batch vs 16 calls of one; the
  throughput ratio, and whether each item's tokens are the same both ways.
- **guidance**: classifier-free guidance (scale 3) vs none, at batch 1 and 16.

Each repeat runs in a fresh process, so ``--src`` can put another source tree first on
``PYTHONPATH`` (e.g. a ``git archive`` of the previous commit): its repeats interleave with
this tree's, which makes a before/after comparison side by side under the same load::

    python benchmarks/generation_scaling.py [--repeats 3] [--threads 1] [--src /tmp/before/src]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = ["a dog barks", "rain on a tin roof", "a bell rings twice", "a car passes by"] * 4


def _child(parts: list[str], threads: int) -> dict:
    import torch

    from c3llm import sdk
    from c3llm.method.continuation import Windows, decode_chunked, refine_windowed

    torch.set_num_threads(threads)
    pipe = sdk.Pipeline.from_config(ROOT / "configs" / "tiny.toml")
    model = pipe.model
    pipe.text_to_tokens("warm-up", duration=0.4, seed=0)
    out: dict = {}

    def timed(fn):
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result

    if "length" in parts:
        for seconds in (8.0, 16.0, 32.0):
            lm, tokens = timed(lambda: pipe.text_to_tokens(CAPTIONS[0], duration=seconds, seed=0))
            coarse = tokens.codes[0]
            windows = tokens.windows or Windows(size=coarse.shape[0], context=1)
            refine, codes = timed(lambda: refine_windowed(model, coarse, lambda s, e: (CAPTIONS[0], None), windows))
            codec, wav = timed(lambda: decode_chunked(model.decoder, codes, chunk=windows.size,
                                                      overlap=max(1, windows.context // 2)))
            out[f"length/{seconds:g}s"] = {"lm": lm, "refiner": refine, "codec": codec, "frames": coarse.shape[0]}
    if "batch" in parts:
        seeds = list(range(len(CAPTIONS)))
        one_call, batched = timed(lambda: pipe.text_to_tokens(CAPTIONS, duration=4.0, seed=seeds))
        sequential, alone = timed(lambda: [pipe.text_to_tokens([c], duration=4.0, seed=[s]).codes[0]
                                           for c, s in zip(CAPTIONS, seeds)])
        out["batch/16 in one call"] = one_call
        out["batch/16 calls of 1"] = sequential
        out["batch/same tokens"] = all(a.tolist() == b.tolist() for a, b in zip(batched.codes, alone))
    if "guidance" in parts:
        for rows in (1, 16):
            for scale in (1.0, 3.0):
                seconds, _ = timed(lambda: pipe.text_to_tokens(CAPTIONS[:rows], duration=4.0, seed=0,
                                                               guidance_scale=scale))
                out[f"guidance/batch {rows}, scale {scale:g}"] = seconds
    return out


def _run(src: str | None, parts: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child", "--parts", ",".join(parts), "--threads", str(threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _flatten(result: dict) -> dict[str, float | bool]:
    flat = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update({f"{key}/{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="length,batch,guidance")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on a busy machine)")
    parser.add_argument("--src", default=None, help="another source tree to compare with (its src/ folder)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    parts = args.parts.split(",")
    if args.child:
        print(json.dumps(_child(parts, args.threads)))
        return

    trees = {"this tree": None} | ({f"--src {args.src}": args.src} if args.src else {})
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    loads = [_load()]
    for _ in range(args.repeats):
        for name, src in trees.items():  # interleaved: both trees see the same load
            runs[name].append(_flatten(_run(src, parts, args.threads)))
            loads.append(_load())
    print(f"tiny pipeline, {args.threads} thread(s), median of {args.repeats} fresh processes per tree; "
          f"load (1/5/15 min) over the run: {loads[0]} ... {loads[-1]}")
    medians = {}
    for name, results in runs.items():
        medians[name] = {k: (statistics.median(r[k] for r in results) if not isinstance(results[0][k], bool)
                             else all(r[k] for r in results)) for k in results[0]}
    for name, m in medians.items():
        print(f"\n== {name}")
        for k, v in m.items():
            print(f"  {k:40s} {v if isinstance(v, bool) else f'{v:.3f}'}")
        if "length/8s/lm" in m:
            for stage in ("lm", "refiner", "codec"):
                print(f"  32 s / 8 s, {stage:8s} {m[f'length/32s/{stage}'] / m[f'length/8s/{stage}']:.2f}x")
            total = {s: sum(m[f"length/{s}/{x}"] for x in ("lm", "refiner", "codec")) for s in ("8s", "32s")}
            print(f"  32 s / 8 s, total    {total['32s'] / total['8s']:.2f}x")
        if "batch/16 in one call" in m:
            print(f"  batch throughput: 16 in one call is {m['batch/16 calls of 1'] / m['batch/16 in one call']:.1f}x "
                  f"16 calls of 1")
        if "guidance/batch 1, scale 1" in m:
            for rows in (1, 16):
                print(f"  guidance cost at batch {rows}: "
                      f"{m[f'guidance/batch {rows}, scale 3'] / m[f'guidance/batch {rows}, scale 1']:.2f}x")
    if len(medians) == 2:
        this, other = medians.values()
        print(f"\n== this tree / {list(trees)[1]} (time ratio, < 1 = faster)")
        for k, v in this.items():
            if not isinstance(v, bool) and k in other and not k.endswith("frames"):
                print(f"  {k:40s} {v / other[k]:.2f}")
    print(json.dumps({"threads": args.threads, "loads": loads, "medians": medians}))


if __name__ == "__main__":
    main()
