"""The ``melvq`` decoder plugin: closed-form codebooks, Griffin-Lim synthesis, save/load, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from c3llm.app.training.codec import (
    CodecTrainConfig,
    mel_distance,
    synthetic_clips,
    train_codec,
)
from c3llm.core.errors import CheckpointError, ConfigError, InputError
from c3llm.core.registry import get_registry
from c3llm.plugins.decoders.melvq import MelVQCodec, MelVQCodecConfig

SR = 8000
SMALL = dict(sample_rate=SR, n_fft=256, stft_hop=64, frames_per_code=2, n_mels=24, codebook_size=16, griffin_lim_iters=16)


def small_codec(**overrides) -> MelVQCodec:
    return MelVQCodec(MelVQCodecConfig(**{**SMALL, **overrides}))


@pytest.fixture(scope="module")
def clips():
    return synthetic_clips(12, 1.0, SR, seed=3)


@pytest.fixture(scope="module")
def fitted(clips):
    codec = small_codec()
    codec.fit(clips, iters=10)
    return codec


def tone(freq: float, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return (amplitude * torch.sin(2 * math.pi * freq * t))[None, None]  # (1, 1, T)


def test_rates_and_shapes_follow_the_config():
    codec = small_codec()
    assert codec.hop_length == 128 and codec.frame_rate == pytest.approx(62.5)
    for samples in (1, 127, 128, 129, 1000):
        codes = codec.encode(torch.randn(2, 1, samples) * 0.1)
        frames = math.ceil(samples / 128)
        assert codes.shape == (2, 2, frames) and codes.dtype == torch.long
        assert codec.decode(codes).shape == (2, 1, frames * 128)
        assert codec.decode(codes[:, :1]).shape == (2, 1, frames * 128)


def test_fitting_makes_reconstruction_much_closer(clips, fitted):
    untrained = small_codec()
    wav = torch.stack(clips[:4])  # (4, 1, T)
    before = mel_distance(untrained.decode(untrained.encode(wav))[..., : wav.shape[-1]], wav, SR)
    after = mel_distance(fitted.decode(fitted.encode(wav))[..., : wav.shape[-1]], wav, SR)
    assert after < 0.5 * before
    assert fitted.encode(wav)[:, 0].unique().numel() > 4  # codebook 1 spreads over the signal


def test_second_codebook_reduces_the_error(clips, fitted):
    wav = torch.stack(clips[:6])
    features = fitted.features(wav)  # (B, S, D)
    codes = fitted.encode(wav)
    one = fitted.codebooks[0][codes[:, 0]]
    two = one + fitted.codebooks[1][codes[:, 1]]
    assert (features - two).abs().mean() < (features - one).abs().mean()


def test_griffin_lim_keeps_the_pitch_of_a_tone():
    codec = small_codec(codebook_size=32)
    codec.fit([tone(f)[0] for f in (300.0, 600.0, 1200.0)], iters=10)
    for freq in (300.0, 1200.0):
        out = codec.decode(codec.encode(tone(freq)))[0, 0]
        spectrum = torch.fft.rfft(out[1000:7000] * torch.hann_window(6000)).abs()
        peak = float(spectrum.argmax()) * SR / 6000
        assert abs(peak - freq) < 40, f"decoded tone peaks at {peak} Hz, not {freq}"
        assert 0.2 < float(out.pow(2).mean().sqrt()) / (0.5 / math.sqrt(2)) < 2.0  # level kept


def test_decoding_is_deterministic(fitted, clips):
    codes = fitted.encode(clips[0][None])
    assert torch.equal(fitted.decode(codes), fitted.decode(codes))


def test_save_and_load_round_trip(tmp_path, fitted, clips):
    fitted.save_pretrained(tmp_path / "codec")
    assert json.loads((tmp_path / "codec" / "config.json").read_text())["format"] == "c3llm-melvq"
    loaded = small_codec(pretrained=str(tmp_path / "codec"))
    loaded.load_pretrained()
    assert bool(loaded.fitted)
    wav = torch.stack(clips[:3])
    assert torch.equal(loaded.encode(wav), fitted.encode(wav))


def test_pipeline_checkpoint_carries_the_codebooks(fitted, clips):
    """A pipeline checkpoint stores the codebooks in its own weights file."""
    rebuilt = small_codec()
    rebuilt.load_checkpoint_state_dict(fitted.checkpoint_state_dict())
    wav = clips[1][None]
    assert torch.equal(rebuilt.encode(wav), fitted.encode(wav))


def test_loading_refuses_another_architecture_or_a_wrong_folder(tmp_path, fitted):
    fitted.save_pretrained(tmp_path / "codec")
    other = small_codec(pretrained=str(tmp_path / "codec"), n_mels=32)
    with pytest.raises(CheckpointError, match="n_mels: config 32 vs checkpoint 24"):
        other.load_pretrained()
    with pytest.raises(CheckpointError, match="not a melvq codec directory"):
        small_codec(pretrained=str(tmp_path / "missing")).load_pretrained()


def test_bad_inputs_are_typed_errors(fitted):
    with pytest.raises(InputError, match="1-channel audio, got 2"):
        fitted.encode(torch.zeros(1, 2, 800))
    with pytest.raises(InputError, match="NaN"):
        fitted.encode(torch.full((1, 1, 800), float("nan")))
    with pytest.raises(InputError, match="outside"):
        fitted.decode(torch.full((1, 2, 3), 16))
    with pytest.raises(InputError, match="no audio"):
        small_codec().fit([])
    with pytest.raises(InputError, match="fewer than codebook_size"):
        small_codec().fit([torch.zeros(1, 400)])


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="n_mels"):
        get_registry().build("decoder", {"name": "melvq", "n_fft": 64, "n_mels": 64})
    with pytest.raises(ConfigError, match="griffin_lim_iters"):
        get_registry().build("decoder", {"name": "melvq", "griffin_lim_iters": 0})


def test_train_codec_fits_it_in_closed_form(tmp_path, clips):
    codec = small_codec()
    report = train_codec(codec, clips, CodecTrainConfig(kmeans_iters=8, eval_clips=3, eval_seconds=0.5),
                         tmp_path / "codec", progress=False)
    assert report["method"] == "fit" and report["train_clips"] == len(clips)
    assert report["fit"]["frames"] == sum(math.ceil(c.shape[-1] / codec.hop_length) for c in clips)
    assert report["quality_after"]["mel_distance"] < report["quality_before"]["mel_distance"]
    loaded = small_codec(pretrained=str(tmp_path / "codec"))
    loaded.load_pretrained()
    assert torch.equal(loaded.codebooks, codec.codebooks)
