"""Speed of the feature cache and of `prepare` (medians of several runs).

1. Cache mechanics at paper-sized entries (10 s clips): EnCodec 24 kHz codes (2, 750) int16,
   CLAP features (17, 512) float32, RGB+flow features (215, 4096) float32. Times `put`,
   verified and unverified `get`, opening a cache with N entries (index present) and
   rebuilding a lost index from the entry headers.
2. Weight fingerprint throughput (part of every extractor key).
3. `prepare_features` end to end with the registered tiny presets (CLAP tiny, RGB+flow
   handcrafted, EnCodec tiny when registered) on synthetic 2 s clips written as WAV + MP4:
   first run (compute) and re-run (verified reuse), seconds per clip.

    python benchmarks/feature_cache.py [--entries 2000] [--clips 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from c3llm.app.features.cache import FeatureCache, weights_fingerprint
from c3llm.app.features.prepare import prepare_features
from c3llm.core.media import Audio, Video
from c3llm.core.registry import get_registry
from c3llm.core.roles import Sample
from c3llm.method.model import C3LLM

ENTRY = {
    "codes": lambda: {"codes": torch.randint(0, 1024, (2, 750), dtype=torch.int16)},
    "audio": lambda: {"features": torch.randn(17, 512)},
    "video": lambda: {"features": torch.randn(215, 4096)},
}


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_cache(root: Path, kind: str, entries: int, repeats: int) -> dict[str, float]:
    put, get_v, get_nv, open_idx, rebuild = [], [], [], [], []
    for r in range(repeats):
        folder = root / f"{kind}-{r}"
        cache = FeatureCache(folder, "k")
        elapsed = 0.0
        for i in range(entries):
            tensors = ENTRY[kind]()
            start = time.perf_counter()
            cache.put(f"clip{i:06d}", tensors)
            elapsed += time.perf_counter() - start
        start = time.perf_counter()
        cache.flush()
        put.append((elapsed + time.perf_counter() - start) / entries)
        ids = cache.ids()
        start = time.perf_counter()
        for id in ids:
            cache.get(id)
        get_v.append((time.perf_counter() - start) / entries)
        start = time.perf_counter()
        for id in ids:
            cache.get(id, verify=False)
        get_nv.append((time.perf_counter() - start) / entries)
        start = time.perf_counter()
        FeatureCache(folder, "k")
        open_idx.append(time.perf_counter() - start)
        (folder / "k" / "index.json").unlink()
        start = time.perf_counter()
        FeatureCache(folder, "k")
        rebuild.append(time.perf_counter() - start)
        shutil.rmtree(folder)
    entry_bytes = sum(t.numel() * t.element_size() for t in ENTRY[kind]().values())
    return {"entry_kib": entry_bytes / 1024, "put_ms": 1e3 * median(put), "get_verified_ms": 1e3 * median(get_v),
            "get_unverified_ms": 1e3 * median(get_nv), "open_s": median(open_idx), "rebuild_index_s": median(rebuild)}


def bench_fingerprint(repeats: int) -> dict[str, float]:
    module = nn.Sequential(*[nn.Linear(1024, 1024) for _ in range(24)])  # ~25M params, ~100 MB
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        weights_fingerprint(module)
        times.append(time.perf_counter() - start)
    return {"megabytes": size / 1e6, "seconds": median(times), "mb_per_s": size / 1e6 / median(times)}


class Extractors(nn.Module):
    """The parts of a C3LLM that prepare uses (no backbone needed)."""

    encode_media = C3LLM.encode_media

    def __init__(self, decoder, encoders):
        super().__init__()
        self.decoder = decoder
        self.encoders = nn.ModuleDict(encoders)


def write_clips(root: Path, count: int, seconds: float = 2.0) -> list[Sample]:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(count):
        t = np.arange(int(seconds * 16000)) / 16000
        wav = 0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t) * (rng.random(t.size) > 0.2)
        audio = Audio(torch.from_numpy(wav[None].astype(np.float32)), 16000).save(root / f"c{i}.wav")
        frames = torch.from_numpy(rng.integers(0, 255, (int(seconds * 10), 64, 64, 3), dtype=np.uint8))
        video = Video.from_frames(frames, 10.0).save(root / f"c{i}.mp4")
        samples.append(Sample(id=f"c{i}", split="train", audio_path=audio, video_path=video))
    return samples


def bench_prepare(root: Path, clips: int, repeats: int) -> dict[str, float]:
    registry = get_registry()
    decoder = None
    if "encodec" in registry.names("decoder"):
        decoder = registry.build("decoder", {"name": "encodec", "preset": "tiny"})
    encoders = {
        "audio": registry.build("encoder", {"name": "clap", "preset": "tiny", "num_local_frames": 8}),
        "video": registry.build("encoder", {"name": "rgb-flow", "fps": 10.0, "frame_size": 32}),
    }
    model = Extractors(decoder, encoders)
    samples = write_clips(root / "media", clips)
    first, again = [], []
    for r in range(repeats):
        cache = root / f"cache{r}"
        start = time.perf_counter()
        report = prepare_features(model, samples, cache, progress=False)
        first.append((time.perf_counter() - start) / clips)
        assert not report.failures, report.summary()
        start = time.perf_counter()
        prepare_features(model, samples, cache, progress=False)
        again.append((time.perf_counter() - start) / clips)
    return {"kinds": ",".join(report.counts), "compute_s_per_clip": median(first), "reuse_ms_per_clip": 1e3 * median(again)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for kind in ENTRY:
            entries = args.entries if kind != "video" else max(1, args.entries // 10)  # 3.5 MB each
            result = bench_cache(root, kind, entries, args.repeats)
            print(f"cache {kind:<5} ({entries} entries): " + ", ".join(f"{k} {v:.3f}" for k, v in result.items()))
        result = bench_fingerprint(args.repeats)
        print("weights fingerprint: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()))
        result = bench_prepare(root, args.clips, args.repeats)
        print(f"prepare ({args.clips} clips of 2 s): " + ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
