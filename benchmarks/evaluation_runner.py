"""Wall time of the evaluate stage on a fake run folder (2-core CPU; median of several runs).

    python benchmarks/evaluation_runner.py [--runs 3] [--num-test 12] [--num-train 60] [--duration 4.0]

A synthetic world is written once; its test split's "generated" outputs are the reference
(T2A/V2A C3LLM), noise (w/o NAR) and the reference shifted in time (pooled video), captions
are a reference caption. Each run deletes ``eval/`` so the reference classifier is trained
again, then calls :func:`c3llm.app.evaluation.runner.evaluate_run`. A profile of the last run
gives the share of the main parts (classifier training, synthetic-world audio metrics, report).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from c3llm.app.evaluation.runner import evaluate_run
from c3llm.app.run_config import parse_run_config
from c3llm.app.stages import RunContext
from c3llm.core.media import Audio, load_audio
from c3llm.core.registry import get_registry
from c3llm.plugins.datasets.synthetic import WorldConfig, generate_world

log = logging.getLogger("benchmarks.evaluation_runner")

PARTS = {
    "reference classifier training": "train_reference_classifier",
    "synth_audio (onsets + YIN pitch)": "synthetic.py:202(compute)",
    "report (figures, samples)": "write_report",
}


def fake_run(root: Path, args) -> RunContext:
    world = root / "world"
    generate_world(WorldConfig(num_train=args.num_train, num_test=args.num_test, num_test_novel=0,
                               duration=args.duration), world, progress=False)
    config = parse_run_config({
        "run": {"name": "bench", "out_dir": str(root / "runs")},
        "decoder": {"name": "encodec"}, "backbone": {"name": "gemma"},
        "audio_encoder": {"name": "logmel"}, "video_encoder": {"name": "rgb-flow"},
        "data": {"train": {"name": "synthetic", "root": str(world), "split": "train"},
                 "eval": {"test": {"name": "synthetic", "root": str(world), "split": "test"}}},
    })
    ctx = RunContext(config, get_registry(), progress=False)
    samples = ctx.eval_samples()["test"]
    out = ctx.directory / "generated" / "test"
    g = torch.Generator().manual_seed(0)
    lines = []
    for s in samples:
        ref = load_audio(s.audio_path)
        noise = Audio(0.3 * torch.randn(ref.waveform.shape, generator=g), ref.sample_rate)
        shifted = Audio(torch.roll(ref.waveform, ref.sample_rate // 3, dims=1), ref.sample_rate)
        for folder, audio in (("t2a", ref), ("t2a_no_nar", noise), ("v2a", ref), ("v2a_no_nar", noise),
                              ("v2a_pooled", shifted)):
            audio.save(out / folder / f"{s.id}.wav")
        lines.append(json.dumps({"id": s.id, "caption": s.captions[1], "references": list(s.captions)}))
    (out / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--num-test", type=int, default=12)
    parser.add_argument("--num-train", type=int, default=60)
    parser.add_argument("--duration", type=float, default=4.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = fake_run(Path(tmp), args)
        times = []
        for run in range(args.runs):
            shutil.rmtree(ctx.directory / "eval", ignore_errors=True)
            profiler = cProfile.Profile() if run == args.runs - 1 else None
            start = time.perf_counter()
            if profiler:
                profiler.runcall(evaluate_run, ctx)
            else:
                evaluate_run(ctx)
            times.append(time.perf_counter() - start)
        stats = pstats.Stats(profiler)
        shares = {}
        for label, needle in PARTS.items():
            shares[label] = sum(v[3] for k, v in stats.stats.items() if needle in f"{k[0]}:{k[1]}({k[2]})" or k[2] == needle)
    print(f"evaluate_run on {args.num_test} test clips x {args.duration:g} s, {args.num_train} training clips "
          f"(2 threads): median {statistics.median(times):.1f} s over {args.runs} runs "
          f"(min {min(times):.1f}, max {max(times):.1f})")
    for label, seconds in shares.items():
        print(f"  {label}: {seconds:.1f} s (profiled run)")


if __name__ == "__main__":
    main()
