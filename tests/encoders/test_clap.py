"""CLAP audio encoder: shapes, fusion, frozen state, both loading routes, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from c3llm.core.errors import CheckpointError, InputError, UnavailableError
from c3llm.core.media import Audio
from c3llm.plugins.encoders.clap import ClapEncoder, ClapEncoderConfig


def _clip(seconds: float, rate: int = 16_000, channels: int = 2, seed: int = 0) -> Audio:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t)
    return Audio((tone + 0.05 * torch.randn(channels, t.numel(), generator=g)).float(), rate)


@pytest.fixture(scope="module")
def encoder() -> ClapEncoder:
    return ClapEncoder(ClapEncoderConfig(num_local_frames=8))


def test_prepend_shape_normalised_and_deterministic(encoder):
    feats = encoder([_clip(4.0), _clip(2.5, rate=22_050, channels=1, seed=1)])
    assert feats.embeds.shape == (2, 9, encoder.output_dim) and encoder.output_dim == 32
    assert feats.mask.all()
    assert torch.allclose(feats.embeds.norm(dim=-1), torch.ones(2, 9), atol=1e-5)
    again = encoder([_clip(4.0)])
    assert torch.allclose(again.embeds[0], feats.embeds[0], atol=1e-6)
    assert not torch.allclose(feats.embeds[0], feats.embeds[1], atol=1e-3)


def test_concat_fusion_and_long_audio():
    enc = ClapEncoder(ClapEncoderConfig(fusion="concat", num_local_frames=4))
    feats = enc([_clip(23.0, rate=8_000, channels=1)])  # three 10 s windows
    assert feats.embeds.shape == (1, 4, 64) and enc.output_dim == 64
    glob = feats.embeds[0, :, 32:]
    assert torch.allclose(glob, glob[:1].expand_as(glob))  # the global half repeats per frame


def test_local_frames_follow_time(encoder):
    quiet_then_loud = torch.cat([torch.zeros(1, 48_000 * 2), 0.5 * torch.randn(1, 48_000 * 2)], 1)
    feats = encoder([Audio(quiet_then_loud, 48_000)])
    local = feats.embeds[0, 1:]  # (8, P)
    # the first half of the local frames describes silence, the second half noise
    assert (local[0] - local[2]).norm() < (local[0] - local[-1]).norm()
    assert (local[-1] - local[-3]).norm() < (local[0] - local[-1]).norm()


def test_silent_audio_is_fine_and_empty_audio_is_refused(encoder):
    feats = encoder([Audio(torch.zeros(1, 48_000), 48_000)])
    assert torch.isfinite(feats.embeds).all()
    with pytest.raises(InputError, match="empty"):
        encoder([Audio(torch.zeros(1, 0), 48_000)])
    with pytest.raises(InputError, match="non-empty list"):
        encoder([])
    with pytest.raises(InputError, match="expected c3llm.core.media.Audio"):
        encoder([torch.zeros(1, 100)])


def test_frozen_and_stays_in_eval(encoder):
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.model.training
    encoder.eval()


def test_extractor_channels_match_the_model():
    from transformers import ClapFeatureExtractor

    wav = [torch.zeros(48_000).double().numpy()]
    unfused = ClapEncoder(ClapEncoderConfig(num_local_frames=2))
    fused = ClapEncoder(ClapEncoderConfig(num_local_frames=2, enable_fusion=True))
    assert unfused.extractor(wav, sampling_rate=48_000, truncation=unfused._truncation, return_tensors="pt")["input_features"].shape[1] == 1
    assert fused.extractor(wav, sampling_rate=48_000, truncation=fused._truncation, return_tensors="pt")["input_features"].shape[1] == 4
    # the library default ('fusion', 4 channels) is what an unfused HTSAT rejects
    default = ClapFeatureExtractor(feature_size=16, hop_length=1920, fft_window_size=2048)
    four = default(wav, sampling_rate=48_000, return_tensors="pt")["input_features"].float()
    with pytest.raises(RuntimeError):
        unfused.model(input_features=four)
    for enc in (unfused, fused):
        assert torch.isfinite(enc([_clip(1.0)]).embeds).all()


# -- loading routes --------------------------------------------------------------------------


def _laion_state(model) -> dict[str, torch.Tensor]:
    """The LAION-CLAP (HTSAT, ``laion_clap/clap_module/htsat.py`` + ``model.py``) names of a
    transformers model's weights, written out module by module from the LAION source."""
    hf = model.state_dict()
    enc = "audio_model.audio_encoder."
    out = {}
    for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        out[f"audio_branch.bn0.{name}"] = hf[f"{enc}batch_norm.{name}"]
    for name in ("proj.weight", "proj.bias", "norm.weight", "norm.bias"):
        out[f"audio_branch.patch_embed.{name}"] = hf[f"{enc}patch_embed.{name}"]
    for key in hf:  # fusion (AFF) block: same Sequential indices in both
        if key.startswith(f"{enc}patch_embed.fusion_model.") or key.startswith(f"{enc}patch_embed.mel_conv2d."):
            out["audio_branch." + key[len(enc):]] = hf[key]
    cfg = model.config
    for i, depth in enumerate(cfg.depths):
        for j in range(depth):
            hb, lb = f"{enc}layers.{i}.blocks.{j}.", f"audio_branch.layers.{i}.blocks.{j}."
            for p in ("weight", "bias"):
                out[f"{lb}norm1.{p}"] = hf[f"{hb}layernorm_before.{p}"]
                out[f"{lb}norm2.{p}"] = hf[f"{hb}layernorm_after.{p}"]
                out[f"{lb}attn.qkv.{p}"] = torch.cat([hf[f"{hb}attention.self.{q}.{p}"] for q in ("query", "key", "value")])
                out[f"{lb}attn.proj.{p}"] = hf[f"{hb}attention.output.dense.{p}"]
                out[f"{lb}mlp.fc1.{p}"] = hf[f"{hb}intermediate.dense.{p}"]
                out[f"{lb}mlp.fc2.{p}"] = hf[f"{hb}output.dense.{p}"]
            out[f"{lb}attn.relative_position_bias_table"] = hf[f"{hb}attention.self.relative_position_bias_table"]
            out[f"{lb}attn.relative_position_index"] = hf[f"{hb}attention.self.relative_position_index"]
            if j % 2 == 1:
                out[f"{lb}attn_mask"] = torch.zeros(4, 16, 16)  # shifted-window buffer
        if i < len(cfg.depths) - 1:
            out[f"audio_branch.layers.{i}.downsample.reduction.weight"] = hf[f"{enc}layers.{i}.downsample.reduction.weight"]
            for p in ("weight", "bias"):
                out[f"audio_branch.layers.{i}.downsample.norm.{p}"] = hf[f"{enc}layers.{i}.downsample.norm.{p}"]
    for p in ("weight", "bias"):
        out[f"audio_branch.norm.{p}"] = hf[f"{enc}norm.{p}"]
        out[f"audio_projection.0.{p}"] = hf[f"audio_projection.linear1.{p}"]
        out[f"audio_projection.2.{p}"] = hf[f"audio_projection.linear2.{p}"]
    # parts of a LAION checkpoint the audio encoder must ignore
    out["audio_branch.spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(3, 1, 4)
    out["audio_branch.logmel_extractor.melW"] = torch.zeros(4, 3)
    out["audio_branch.tscam_conv.weight"] = torch.zeros(5, 32, 2, 3)
    out["audio_branch.head.weight"] = torch.zeros(5, 5)
    out["text_branch.embeddings.word_embeddings.weight"] = torch.zeros(7, 4)
    out["text_projection.0.weight"] = torch.zeros(4, 4)
    out["logit_scale_a"] = torch.zeros(())
    return out


@pytest.mark.parametrize("fusion", [False, True])
def test_laion_checkpoint_and_hf_directory_agree(tmp_path, fusion):
    source = ClapEncoder(ClapEncoderConfig(init_seed=7, enable_fusion=fusion, num_local_frames=4))
    hf_dir = tmp_path / "hf"
    source.model.save_pretrained(hf_dir)
    laion = tmp_path / "laion.pt"
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in _laion_state(source.model).items()}}, laion)

    clips = [_clip(3.0), _clip(12.0, seed=2)]
    expected = source(clips).embeds
    outputs = []
    for path in (hf_dir, laion):
        enc = ClapEncoder(ClapEncoderConfig(init_seed=0, enable_fusion=fusion, num_local_frames=4, pretrained=str(path)))
        before = enc(clips).embeds
        enc.load_pretrained()
        outputs.append(enc(clips).embeds)
        assert not torch.allclose(before, outputs[-1], atol=1e-3)
    assert torch.allclose(outputs[0], expected, atol=1e-5)
    assert torch.allclose(outputs[1], outputs[0], atol=1e-5)


def test_full_clap_model_directory_loads_audio_tower(tmp_path):
    from transformers import ClapConfig, ClapModel

    source = ClapEncoder(ClapEncoderConfig(init_seed=3, num_local_frames=2))
    text = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=32, projection_dim=32, max_position_embeddings=40)
    full = ClapModel(ClapConfig(audio_config=source.model.config.to_dict(), text_config=text, projection_dim=32))
    full.audio_model.load_state_dict(source.model.audio_model.state_dict())
    full.audio_projection.load_state_dict(source.model.audio_projection.state_dict())
    full.save_pretrained(tmp_path)
    enc = ClapEncoder(ClapEncoderConfig(num_local_frames=2, pretrained=str(tmp_path)))
    enc.load_pretrained()
    assert torch.allclose(enc([_clip(1.0)]).embeds, source([_clip(1.0)]).embeds, atol=1e-5)


def test_loading_errors(tmp_path, monkeypatch):
    with pytest.raises(UnavailableError, match="does not exist"):
        ClapEncoder(ClapEncoderConfig(pretrained=str(tmp_path / "nope.pt"))).load_pretrained()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnavailableError, match="offline"):
        ClapEncoder(ClapEncoderConfig(hub_id="laion/clap-htsat-unfused")).load_pretrained()
    fused = ClapEncoder(ClapEncoderConfig(enable_fusion=True))
    torch.save(_laion_state(fused.model), tmp_path / "fused.pt")
    with pytest.raises(CheckpointError, match="enable_fusion"):
        ClapEncoder(ClapEncoderConfig(pretrained=str(tmp_path / "fused.pt"))).load_pretrained()
    fused.model.save_pretrained(tmp_path / "fused_dir")
    with pytest.raises(CheckpointError, match="enable_fusion"):
        ClapEncoder(ClapEncoderConfig(pretrained=str(tmp_path / "fused_dir"))).load_pretrained()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="weights_only"):
        ClapEncoder(ClapEncoderConfig(pretrained=str(tmp_path / "junk.pt"))).load_pretrained()


def test_config_validation():
    from c3llm.core.config import from_mapping
    from c3llm.core.errors import ConfigError

    with pytest.raises(ConfigError, match="num_local_frames"):
        from_mapping(ClapEncoderConfig, {"fusion": "concat", "num_local_frames": 0})
    with pytest.raises(ConfigError, match="preset"):
        from_mapping(ClapEncoderConfig, {"preset": "htsat-huge"})
