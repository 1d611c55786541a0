"""The ``encodec`` decoder plugin: contract shapes, code range, save/load, input and config errors."""

from __future__ import annotations

import math

import pytest
import torch

from c3llm.core.config import from_mapping
from c3llm.core.errors import CheckpointError, ConfigError, InputError, UnavailableError
from c3llm.core.roles import Decoder
from c3llm.plugins.decoders.encodec import (
    EncodecCodec,
    EncodecCodecConfig,
    config_for_checkpoint,
)


def test_attributes_follow_the_architecture(codec):
    assert isinstance(codec, Decoder)
    assert (codec.sample_rate, codec.channels, codec.num_codebooks, codec.cardinality) == (8000, 1, 2, 64)
    assert codec.hop_length == 32
    assert codec.frame_rate == pytest.approx(250.0)
    assert codec.frames_for(1.0) == 250 and codec.frames_for(0.01) == 3


@pytest.mark.parametrize("samples", [1, 31, 32, 33, 800, 1001])
def test_encode_decode_shapes_and_frame_counts(codec, samples):
    wav = torch.randn(2, 1, samples) * 0.1
    codes = codec.encode(wav)
    frames = math.ceil(samples / codec.hop_length)
    assert codes.shape == (2, 2, frames) and codes.dtype == torch.long
    assert frames == codec.frames_for(samples / codec.sample_rate)
    audio = codec.decode(codes)
    assert audio.shape == (2, 1, frames * codec.hop_length) and audio.dtype == torch.float32
    assert codec.decode(codes[:, :1]).shape == audio.shape  # fewer codebooks are allowed


def test_codes_lie_in_range_and_use_several_entries(codec):
    codes = codec.encode(torch.randn(3, 1, 4000) * 0.3)
    assert int(codes.min()) >= 0 and int(codes.max()) < codec.cardinality
    assert codes[:, 0].unique().numel() > 1


def test_encode_is_deterministic_and_batch_independent(codec):
    wav = torch.randn(2, 1, 1000) * 0.2
    both = codec.encode(wav)
    assert torch.equal(both[1:], codec.encode(wav[1:]))
    assert torch.equal(both, codec.encode(wav))


def test_decode_with_fewer_codebooks_omits_the_rest(codec):
    codes = codec.encode(torch.randn(1, 1, 800) * 0.2)
    emb_full = codec.embed_codes(codes)
    emb_first = codec.embed_codes(codes[:, :1])
    second = codec.model.quantizer.layers[1].codebook.embed[codes[0, 1]].t()[None]  # (1, D, S)
    torch.testing.assert_close(emb_full - emb_first, second)


def test_hf_directory_round_trip(codec, tiny_config, tmp_path):
    codec.save_pretrained(tmp_path / "codec")
    assert (tmp_path / "codec" / "model.safetensors").is_file()
    loaded = EncodecCodec(tiny_config(pretrained=str(tmp_path / "codec")))
    loaded.load_pretrained()
    wav = torch.randn(2, 1, 1234) * 0.2
    codes = codec.encode(wav)
    assert torch.equal(loaded.encode(wav), codes)
    torch.testing.assert_close(loaded.decode(codes), codec.decode(codes))
    rebuilt = config_for_checkpoint(tmp_path / "codec", num_codebooks=3)
    assert rebuilt.architecture() == tiny_config().architecture() and rebuilt.num_codebooks == 3


def test_loading_weights_of_another_architecture_names_the_difference(codec, tiny_config, tmp_path):
    codec.save_pretrained(tmp_path / "codec")
    other = EncodecCodec(tiny_config(hidden_size=8, pretrained=str(tmp_path / "codec")))
    with pytest.raises(CheckpointError, match=r"hidden_size: config 8 vs checkpoint 16.*config_for_checkpoint"):
        other.load_pretrained()


def test_missing_and_wrong_pretrained_paths(tiny_config, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        EncodecCodec(tiny_config(pretrained=str(tmp_path / "nowhere"))).load_pretrained()
    text = tmp_path / "weights.bin"
    text.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not an official EnCodec checkpoint"):
        EncodecCodec(tiny_config(pretrained=str(text))).load_pretrained()
    broken = tmp_path / "broken.th"
    broken.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        EncodecCodec(tiny_config(pretrained=str(broken))).load_pretrained()


def test_hub_id_offline_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    codec = EncodecCodec(EncodecCodecConfig(preset="encodec_24khz", pretrained="facebook/encodec_24khz"))
    with pytest.raises(UnavailableError, match="offline.*pretrained"):
        codec.load_pretrained()


def test_no_pretrained_is_a_noop_and_leaves_codebooks_for_kmeans(tiny_config):
    codec = EncodecCodec(tiny_config())
    codec.load_pretrained()
    assert all(layer.codebook.inited.item() == 0 for layer in codec.model.quantizer.layers)


@pytest.mark.parametrize(
    ("wav", "message"),
    [
        (torch.zeros(1, 800), r"\(batch, channels, samples\).*wav\[None, None\]"),
        (torch.zeros(1, 2, 800), r"1-channel audio, got 2 channels"),
        (torch.zeros(1, 1, 800, dtype=torch.int16), r"float samples"),
        (torch.zeros(1, 1, 0), r"empty waveform"),
        (torch.tensor([[[0.0, float("nan"), 0.1]]]), r"NaN or infinite"),
        ([0.0, 0.1], r"torch.Tensor"),
    ],
)
def test_encode_rejects_bad_input(codec, wav, message):
    with pytest.raises(InputError, match=message):
        codec.encode(wav)


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        (torch.zeros(1, 5, dtype=torch.long), r"\(batch, codebooks, frames\)"),
        (torch.zeros(1, 2, 5), r"integer codes"),
        (torch.zeros(1, 3, 5, dtype=torch.long), r"got 3 codebooks; this codec uses 1..2"),
        (torch.full((1, 2, 5), 64, dtype=torch.long), r"codes in \[64, 64\], outside \[0, 64\)"),
        (torch.full((1, 1, 5), -1, dtype=torch.long), r"outside \[0, 64\)"),
        (torch.zeros(1, 2, 0, dtype=torch.long), r"empty codes"),
    ],
)
def test_decode_rejects_bad_codes(codec, codes, message):
    with pytest.raises(InputError, match=message):
        codec.decode(codes)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"num_codebooks = 4 exceeds the model's 2"):
        from_mapping(EncodecCodecConfig, {"num_codebooks": 4}, where="decoder")
    with pytest.raises(ConfigError, match=r"codebook_size must be >= 2 and <= 1024, got 2048"):
        from_mapping(EncodecCodecConfig, {"codebook_size": 2048}, where="decoder")
    with pytest.raises(ConfigError, match=r"power of two"):
        from_mapping(EncodecCodecConfig, {"codebook_size": 100}, where="decoder")
    with pytest.raises(ConfigError, match=r"decoder.preset.*'tiny'"):
        from_mapping(EncodecCodecConfig, {"preset": "tiny2"}, where="decoder")
    config = from_mapping(EncodecCodecConfig, {"preset": "encodec_24khz", "num_codebooks": 8}, where="decoder")
    assert config.architecture()["total_codebooks"] == 32


def test_presets_match_the_published_models():
    full = EncodecCodec(EncodecCodecConfig(preset="encodec_24khz"))
    assert (full.sample_rate, full.frame_rate, full.cardinality) == (24_000, 75.0, 1024)
    assert len(full.model.quantizer.layers) == 32 and len(full.model.state_dict()) == 252
    tiny = EncodecCodec(EncodecCodecConfig())
    assert (tiny.sample_rate, tiny.frame_rate, tiny.num_codebooks) == (16_000, 25.0, 2)
    assert 0.5e6 < sum(p.numel() for p in tiny.parameters()) < 1.0e6


def test_registered_as_decoder_plugin():
    from c3llm.core.registry import BUILTIN_PLUGINS
    from c3llm.plugins.decoders import encodec

    assert BUILTIN_PLUGINS["encodec"] == "c3llm.plugins.decoders.encodec"
    seen = []
    encodec.register_decoders(register=lambda name, cls, config, **kw: seen.append((name, cls, config)))
    assert seen == [("encodec", EncodecCodec, EncodecCodecConfig)]
