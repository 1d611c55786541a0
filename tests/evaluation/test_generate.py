"""generate_for_split: every output folder, lengths matching the references, the codec
ceiling, and resuming without redoing finished clips."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from c3llm import sdk
from c3llm.app.evaluation.generate import AUDIO_OUTPUTS, generate_for_split
from c3llm.core.media import load_audio
from c3llm.plugins.datasets.synthetic import (
    SyntheticDataset,
    SyntheticDatasetConfig,
    WorldConfig,
    generate_world,
)

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny.toml"


def test_generate_for_split_writes_every_output_and_resumes(tmp_path):
    world = tmp_path / "world"
    generate_world(WorldConfig(num_train=6, num_test=2, num_test_novel=0, duration=0.6, max_events=1,
                               sources=("beep", "knock"), novel_combinations=()), world, progress=False)
    samples = list(SyntheticDataset(SyntheticDatasetConfig(root=str(world), split="test")))
    torch.manual_seed(0)
    pipe = sdk.Pipeline.from_config(TINY)
    out = generate_for_split(pipe, samples, tmp_path / "generated", batch_size=2, progress=False)

    codec = pipe.model.decoder
    for sample in samples:
        reference = load_audio(sample.audio_path)
        for folder in AUDIO_OUTPUTS:
            audio = load_audio(out / folder / f"{sample.id}.wav")
            assert audio.sample_rate == codec.sample_rate
            assert abs(audio.duration - reference.duration) < 1.5 / codec.frame_rate, folder
        # the codec ceiling is exactly the reference through encode -> decode
        wav = reference.to(codec.sample_rate, codec.channels).waveform[None]
        expected = codec.decode(codec.encode(wav))[0, :, : wav.shape[-1]]
        assert torch.allclose(load_audio(out / "codec" / f"{sample.id}.wav").waveform, expected, atol=1e-4)
    lines = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(s.id for s in samples)

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    generate_for_split(pipe, samples, out, batch_size=2, progress=False)  # everything done: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == stamps
    assert len((out / "captions.jsonl").read_text().splitlines()) == len(samples)


def test_evaluation_generates_exactly_what_the_sdk_returns(tmp_path):
    """One generation path: the evaluate stage's outputs are the SDK's public calls, so for the
    same clips and seed they are identical (audio with and without the refiner, V2A, captions)."""
    world = tmp_path / "world"
    generate_world(WorldConfig(num_train=4, num_test=3, num_test_novel=0, duration=0.6, max_events=1,
                               sources=("beep", "knock"), novel_combinations=()), world, progress=False)
    samples = list(SyntheticDataset(SyntheticDatasetConfig(root=str(world), split="test")))
    torch.manual_seed(0)
    pipe = sdk.Pipeline.from_config(TINY)
    out = generate_for_split(pipe, samples, tmp_path / "generated", seed=5, batch_size=2, progress=False)

    batch = samples[:2]  # the first batch is generated with the run's seed itself
    durations = [load_audio(s.audio_path).duration for s in batch]
    captions = [s.captions[0] for s in batch]
    videos = [sdk.load_video(s.video_path) for s in batch]
    expected = {
        "t2a": pipe.text_to_audio(captions, duration=durations, seed=5),
        "t2a_no_nar": pipe.text_to_audio(captions, duration=durations, seed=5, refine=False),
        "v2a": pipe.video_to_audio(videos, duration=durations, seed=5),
        "v2a_no_nar": pipe.video_to_audio(videos, duration=durations, seed=5, refine=False),
        "v2a_pooled": pipe.video_to_audio(videos, duration=durations, seed=5, video_pooling="mean"),
    }
    for folder, audios in expected.items():
        for sample, audio in zip(batch, audios):
            saved = load_audio(out / folder / f"{sample.id}.wav").waveform
            assert saved.shape == audio.waveform.shape, folder
            assert torch.allclose(saved, audio.waveform, atol=1e-4), folder
    rows = {json.loads(line)["id"]: json.loads(line)["caption"] for line in (out / "captions.jsonl").read_text().splitlines()}
    assert [rows[s.id] for s in batch] == pipe.audio_to_text([s.audio_path for s in batch], seed=5)
