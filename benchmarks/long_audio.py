"""Long audio by windowed continuation, on a trained demo run: quality, seams and cost.

    python benchmarks/long_audio.py runs/demo [--seconds 60] [--timing 8 16 32 64]

1. T2A of ``--seconds`` for a few prompts: the run's reference classifier (``eval/reference_
   classifier``, trained by the evaluate stage) labels every 4 s segment; share that names the
   prompt's source.
2. V2A of ``--seconds`` videos, each made of consecutive new clips of one (source, pitch)
   pair drawn and rendered by the world's own generator (frames and their ground-truth audio):
   per-segment source accuracy, and onset AP / accuracy over the whole clip (CondFoleyGen).
3. Seams: at each window boundary, the jump of the log-mel frame (50 ms) and of the level (dB)
   between the frames just before and after it, against the same jumps everywhere else
   (median; the percentile of the boundary jumps among all jumps: ~50 = no seam).
4. Cost: T2A wall time at each ``--timing`` duration (one run each, after a warm-up), and its
   ratio to the shortest.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import attrs
import numpy as np
import torch

from c3llm import sdk
from c3llm.core.media import Audio, Video
from c3llm.core.registry import get_registry
from c3llm.method.continuation import Windows
from c3llm.scoring.embedders import LogMel
from c3llm.scoring.reference_classifier import ReferenceClassifier

PROMPTS = {"beep": "a high beep sounds three times", "knock": "a loud knock sounds twice",
           "bell": "a mid bell rings twice", "drone": "a low engine drones"}
#: (source, pitch) pairs of the world's training combinations for the long V2A videos
V2A_PAIRS = (("knock", "mid"), ("bell", "high"), ("drone", "low"))
SEGMENT = 4.0


def segments(audio: Audio, seconds: float = SEGMENT) -> list[Audio]:
    step = round(seconds * audio.sample_rate)
    return [Audio(audio.waveform[:, i:i + step], audio.sample_rate)
            for i in range(0, audio.num_samples - step + 1, step)]


def world_video(seconds: float, sample_rate: int, source: str = "knock", pitch: str = "mid") -> tuple[Video, Audio, list[str]]:
    """A video of ``seconds`` made of consecutive new clips of one (source, pitch) pair, drawn
    and rendered by the world's own generator (clip indices no split of the demo uses)."""
    from c3llm.plugins.datasets.synthetic import WorldConfig
    from c3llm.plugins.datasets.synthetic.scene import (
        render_audio,
        render_frames,
        sample_clip,
    )

    config = WorldConfig(seed=0, num_train=1200)
    clips = [sample_clip(config, "test", 100_000 + i, source, pitch) for i in range(round(seconds / config.duration))]
    frames = torch.cat([torch.from_numpy(render_frames(c)) for c in clips])
    audio = torch.cat([torch.from_numpy(render_audio(c)).float() for c in clips])
    video = Video.from_frames(frames, clips[0].fps)
    return video, Audio(audio[None], clips[0].sample_rate).to(sample_rate), [c.source for c in clips]


def seam_report(audio: Audio, boundaries: list[float]) -> dict[str, float]:
    mel = LogMel(sample_rate=audio.sample_rate, n_fft=1024, hop_length=round(0.05 * audio.sample_rate), n_mels=64,
                 fmin=0.0, fmax=audio.sample_rate / 2)
    with torch.no_grad():
        spec = mel(audio.waveform[:1])[0].numpy()  # (frames, mels) in dB
    level = 10 * np.log10(np.mean(10 ** (spec / 10), axis=1) + 1e-10)
    spectral_jump = np.abs(np.diff(spec, axis=0)).mean(axis=1)
    level_jump = np.abs(np.diff(level))
    at = [min(len(spectral_jump) - 1, round(b / 0.05) - 1) for b in boundaries]
    out = {}
    for name, jumps in (("spectral", spectral_jump), ("level_db", level_jump)):
        out[f"{name}_jump_at_seams"] = float(np.median(jumps[at])) if at else float("nan")
        out[f"{name}_jump_elsewhere"] = float(np.median(np.delete(jumps, at)))
        out[f"{name}_seam_percentile"] = float(np.mean([np.mean(jumps < jumps[i]) * 100 for i in at])) if at else 50.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--timing", type=float, nargs="*", default=[8.0, 16.0, 32.0, 64.0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of every request")
    parser.add_argument("--window", type=float, default=None, help="window seconds (default: the run's)")
    parser.add_argument("--context", type=float, default=None, help="context seconds (default: the run's)")
    parser.add_argument("--video-context", type=float, default=None, help="V2A context seconds (default: the run's)")
    parser.add_argument("--out", type=Path, default=None, help="write WAVs and results.json here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = sdk.Pipeline.from_pretrained(args.run)
    if args.window or args.context or args.video_context:
        g = pipe.generate_defaults
        pipe.generate_defaults = attrs.evolve(g, window_seconds=args.window or g.window_seconds,
                                              context_seconds=args.context or g.context_seconds,
                                              video_context_seconds=args.video_context or g.video_context_seconds)
    classifier = ReferenceClassifier.from_directory(args.run / "eval" / "reference_classifier")
    defaults, codec = pipe.generate_defaults, pipe.codec

    def boundaries(context_seconds: float) -> list[float]:
        """Seconds at which windows after the first start adding audio."""
        windows = Windows(size=codec.frames_for(defaults.window_seconds), context=codec.frames_for(context_seconds))
        return [keep / codec.frame_rate for _, keep, _ in windows.spans(codec.frames_for(args.seconds))[1:]]

    text_seams = boundaries(defaults.context_seconds)
    video_seams = boundaries(defaults.video_context_seconds or defaults.context_seconds)
    results: dict[str, object] = {"seed": args.seed, "seconds": args.seconds, "window_seconds": defaults.window_seconds,
                                  "context_seconds": defaults.context_seconds,
                                  "video_context_seconds": defaults.video_context_seconds, "t2a": {},
                                  "load_average": open("/proc/loadavg").read().split()[:3]}
    for source, prompt in PROMPTS.items():
        audio = pipe.text_to_audio(prompt, duration=args.seconds, seed=args.seed)
        labels = classifier.predict(segments(audio))
        results["t2a"][source] = {"prompt": prompt, "segment_source_acc": float(np.mean([lab == source for lab in labels])),
                                  "seams": seam_report(audio, text_seams)}
        if args.out:
            audio.save(args.out / f"t2a_{source}.wav")
        print(source, results["t2a"][source]["segment_source_acc"], flush=True)
    results["v2a"] = {}
    for source, pitch in V2A_PAIRS:
        video, reference, sources = world_video(args.seconds, pipe.codec.sample_rate, source, pitch)
        audio = pipe.video_to_audio(video, seed=args.seed)
        labels = classifier.predict(segments(audio))
        onset = get_registry().build("metric", "onset_ap").compute([audio], [reference.to(audio.sample_rate)])
        results["v2a"][f"{source}-{pitch}"] = {
            "clips": len(sources), "segment_source_acc": float(np.mean([a == b for a, b in zip(labels, sources)])),
            **onset, "seams": seam_report(audio, video_seams)}
        print("v2a", source, pitch, results["v2a"][f"{source}-{pitch}"], flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        audio.save(args.out / "v2a.wav")
        video.save(args.out / "v2a.mp4", audio=audio)
    timing = {}
    if args.timing:
        pipe.text_to_audio("a bell rings", duration=4.0, seed=0)  # warm-up
    for seconds in args.timing:
        started = time.perf_counter()
        pipe.text_to_audio("a bell rings twice", duration=seconds, seed=0)
        timing[seconds] = time.perf_counter() - started
        print(f"T2A {seconds:g} s: {timing[seconds]:.2f} s wall", flush=True)
    if timing:
        shortest = min(timing)
        results["timing"] = {f"{s:g}": {"wall_s": round(t, 2), "ratio": round(t / timing[shortest], 2)}
                             for s, t in timing.items()}
    print(json.dumps(results, indent=2))
    if args.out:
        (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
