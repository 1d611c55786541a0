"""The SDK Pipeline on the tiny config: tasks, save/load, compatibility and input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from c3llm import sdk
from c3llm.core.errors import (
    CheckpointError,
    ConfigError,
    IncompatibleComponentsError,
    InputError,
    MediaError,
)

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.toml"


@pytest.fixture(scope="module")
def pipe() -> sdk.Pipeline:
    torch.manual_seed(0)
    return sdk.Pipeline.from_config(TINY)


def test_text_to_audio_length_and_rate(pipe):
    audio = pipe.text_to_audio("a dog barks", duration=2.0, seed=0)
    assert isinstance(audio, sdk.Audio)
    assert audio.sample_rate == pipe.model.decoder.sample_rate
    assert audio.waveform.shape == (pipe.model.decoder.channels, 2 * audio.sample_rate)
    assert torch.isfinite(audio.waveform).all()


def test_text_to_audio_batch_seed_and_guidance(pipe):
    a = pipe.text_to_audio(["a dog barks", "a high beep"], duration=0.6, seed=3, guidance_scale=2.0, top_k=20)
    b = pipe.text_to_audio(["a dog barks", "a high beep"], duration=0.6, seed=3, guidance_scale=2.0, top_k=20)
    assert isinstance(a, list) and len(a) == 2
    assert all(torch.equal(x.waveform, y.waveform) for x, y in zip(a, b)), "same seed must give the same audio"


def test_audio_to_text_returns_string(pipe, tmp_path):
    wav = sdk.Audio(0.1 * torch.randn(1, 8000), 16000).save(tmp_path / "x.wav")
    text = pipe.audio_to_text(wav, max_tokens=5)
    assert isinstance(text, str)
    beams = pipe.audio_to_text([wav, wav], strategy="beam", num_beams=2, max_tokens=4)
    assert isinstance(beams, list) and len(beams) == 2 and beams[0] == beams[1]


def test_video_to_audio_lasts_as_long_as_the_video(pipe, tmp_path):
    frames = torch.randint(0, 255, (15, 32, 32, 3), dtype=torch.uint8)
    path = sdk.Video.from_frames(frames, fps=10.0).save(tmp_path / "x.mp4")
    audio = pipe.video_to_audio(path, seed=0)
    video = sdk.load_video(path)
    assert abs(audio.duration - video.duration) < 1e-3
    both = pipe.video_to_audio(path, text="a dog barks", duration=0.5, seed=0)
    assert both.waveform.shape[-1] == round(0.5 * both.sample_rate)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda p: p.text_to_audio(""), InputError, "text is empty"),
        (lambda p: p.text_to_audio("x" * 5000), InputError, "at most 2000"),
        (lambda p: p.text_to_audio("a dog", duration=-1), InputError, "duration must be a positive"),
        (lambda p: p.text_to_audio([]), InputError, "empty list"),
        (lambda p: p.text_to_audio("a dog", temperature=-1.0), ConfigError, "temperature must be >= 0.0"),
        (lambda p: p.text_to_audio("a dog", tempreature=1.0), ConfigError, "Did you mean 'temperature'"),
        (lambda p: p.audio_to_text("missing.wav"), MediaError, "audio file not found"),
        (lambda p: p.video_to_audio("missing.mp4"), MediaError, "video file not found"),
        (lambda p: p.audio_to_text(sdk.Audio(torch.zeros(1, 0), 16000)), InputError, "no samples"),
        (lambda p: p.audio_to_text(3), InputError, "unsupported input"),
    ],
)
def test_bad_inputs_get_clear_errors(pipe, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(pipe)


def test_corrupt_media_files(pipe, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense that is not audio")
    with pytest.raises(MediaError, match="cannot decode audio"):
        pipe.audio_to_text(bad)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        pipe.video_to_audio(empty)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(1)
    pipe = sdk.Pipeline.from_config(TINY)
    out = pipe.save_pretrained(tmp_path / "ckpt")
    record = json.loads((out / "pipeline.json").read_text())
    assert record["components"]["backbone"]["name"] == "gemma"
    assert record["components"]["backbone"]["distribution"] == "c3llm"
    loaded = sdk.Pipeline.from_pretrained(out)
    a = pipe.text_to_audio("a dog barks", duration=0.5, seed=7)
    b = loaded.text_to_audio("a dog barks", duration=0.5, seed=7)
    assert torch.allclose(a.waveform, b.waveform, atol=1e-5)
    with pytest.raises(CheckpointError, match="merged its adapters"):
        pipe.save_pretrained(tmp_path / "again")


def test_checkpoint_with_missing_plugin_is_refused(tmp_path):
    pipe = sdk.Pipeline.from_config(TINY)
    out = pipe.save_pretrained(tmp_path / "ckpt")
    record = json.loads((out / "pipeline.json").read_text())
    record["components"]["refiner"].update(name="fancy-refiner", plugin="fancy", distribution="c3llm-fancy", version="2.0")
    (out / "pipeline.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=r"needs refiner 'fancy-refiner' from plugin 'fancy' \(c3llm-fancy 2.0\)"):
        sdk.Pipeline.from_pretrained(out)


def test_checkpoint_with_mismatched_shapes_is_refused(tmp_path):
    pipe = sdk.Pipeline.from_config(TINY)
    out = pipe.save_pretrained(tmp_path / "ckpt")
    record = json.loads((out / "pipeline.json").read_text())
    record["components"]["refiner"]["config"]["dim"] *= 2
    (out / "pipeline.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="refiner: checkpoint does not match"):
        sdk.Pipeline.from_pretrained(out)
    with pytest.raises(CheckpointError, match="not a c3llm checkpoint"):
        sdk.Pipeline.from_pretrained(tmp_path)


def test_compatibility_checks_name_both_sides():
    with pytest.raises(IncompatibleComponentsError, match=r"refiner.cardinality = 7 but decoder.cardinality = \d+"):
        sdk.Pipeline.from_plugins(decoder="encodec", backbone="gemma", refiner={"name": "nar", "cardinality": 7})
    with pytest.raises(IncompatibleComponentsError, match=r"refiner.cond_dim = 3 but backbone.hidden_size = \d+"):
        sdk.Pipeline.from_plugins(decoder="encodec", backbone="gemma", refiner={"name": "nar", "cond_dim": 3})
    with pytest.raises(IncompatibleComponentsError, match="video encoder slot holds"):
        sdk.Pipeline.from_plugins(decoder="encodec", backbone="gemma", video_encoder="clap")


def test_missing_encoder_is_explained():
    pipe = sdk.Pipeline.from_plugins(decoder="encodec", backbone="gemma")
    with pytest.raises(InputError, match="no audio encoder"):
        pipe.audio_to_text(sdk.Audio(torch.zeros(1, 1600), 16000))
    audio = pipe.text_to_audio("a dog barks", duration=0.4, seed=0)  # no refiner: codebook 1 only
    assert audio.waveform.shape[-1] == round(0.4 * audio.sample_rate)
