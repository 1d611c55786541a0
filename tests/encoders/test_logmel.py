"""The weight-free ``logmel`` encoder: level-preserving features and the projector it asks for."""

from __future__ import annotations

import json
import math

import pytest
import torch

from c3llm import sdk
from c3llm.core.errors import CheckpointError
from c3llm.core.media import Audio
from c3llm.method.projector import Projector
from c3llm.plugins.encoders.logmel import LogMelConfig, LogMelEncoder

SR = 16000


def _tone(amplitude: float, seconds: float = 1.0, hz: float = 440.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return amplitude * torch.sin(2 * math.pi * hz * t)


def _clip(*parts: torch.Tensor) -> Audio:
    return Audio(torch.cat(parts)[None], SR)


def test_features_keep_absolute_level():
    enc = LogMelEncoder(LogMelConfig(deltas=False, feature_rate=4.0))
    quiet = torch.randn(SR) * 1e-3  # background noise
    x = enc([_clip(quiet, _tone(0.05), _tone(0.5))]).embeds[0]  # (12, 48): 4 frames per part
    noise, soft, loud = (x[i:i + 2].max(-1).values.mean() for i in (1, 5, 9))  # peak band per frame
    assert noise < soft < loud, "frame level must grow with loudness"
    # ten times the amplitude adds log(10) / level_scale to its active bands (magnitude mel)
    peak = (x[9:11].max(-1).values - x[5:7].max(-1).values).mean()
    assert abs(float(peak) - math.log(10) / enc.config.level_scale) < 0.05


def test_features_are_standardised_with_the_configured_constants():
    wave = _clip(_tone(0.3))
    a = LogMelEncoder(LogMelConfig(deltas=False)).forward([wave]).embeds
    b = LogMelEncoder(LogMelConfig(deltas=False, level_offset=0.0, level_scale=1.0)).forward([wave]).embeds
    assert torch.allclose(a, (b + 8.0) / 2.0, atol=1e-5)


def test_a_per_frame_norm_would_blow_noise_up_to_the_level_of_events():
    """Why logmel sets frame_norm = False."""
    enc = LogMelEncoder(LogMelConfig(deltas=False, feature_rate=4.0))
    x = enc([_clip(torch.randn(SR) * 1e-3, _tone(0.5))]).embeds[0]  # (8, 48)
    noise, tone = x[1:3].std(-1).mean(), x[5:7].std(-1).mean()
    assert noise < 0.2 * tone, "in the features, background noise is far below an event"
    normed = torch.nn.functional.layer_norm(x, x.shape[-1:])
    assert normed[1:3].std(-1).mean() > 0.95 * normed[5:7].std(-1).mean(), "after a per-frame norm it is not"


def _logmel_pipeline() -> sdk.Pipeline:
    torch.manual_seed(0)
    return sdk.Pipeline.from_plugins(
        decoder={"name": "melvq", "codebook_size": 16, "griffin_lim_iters": 2},
        backbone={"name": "gemma", "mode": "full", "hidden_size": 32, "num_layers": 1},
        audio_encoder="logmel",
        video_encoder={"name": "rgb-flow", "extractor": "handcrafted", "fps": 8.0, "frame_size": 32},
    )


def test_projectors_follow_what_each_encoder_asks_for(tmp_path):
    pipe = _logmel_pipeline()
    assert not pipe.model.projectors["audio"].frame_norm
    assert isinstance(pipe.model.projectors["audio"].net[0], torch.nn.Identity)
    assert pipe.model.projectors["video"].frame_norm
    assert isinstance(pipe.model.projectors["video"].net[0], torch.nn.LayerNorm)

    out = pipe.save_pretrained(tmp_path / "ckpt")
    record = json.loads((out / "pipeline.json").read_text())
    assert record["projector_frame_norm"] == {"audio": False, "video": True}
    loaded = sdk.Pipeline.from_pretrained(out)
    wav = _clip(_tone(0.3, seconds=0.5))
    assert pipe.audio_to_text(wav, max_tokens=4) == loaded.audio_to_text(wav, max_tokens=4)

    # a record without the key is read as "every projector normalised" (older checkpoints),
    # which these weights do not match: a clear refusal, not a silent misload
    del record["projector_frame_norm"]
    (out / "pipeline.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="projectors"):
        sdk.Pipeline.from_pretrained(out)
    record["projector_frame_norm"] = {"audio": "no"}
    (out / "pipeline.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="projector_frame_norm must map modality -> true/false"):
        sdk.Pipeline.from_pretrained(out)


def test_projector_state_dict_keys_do_not_shift():
    with_norm, without = Projector(6, 4), Projector(6, 4, frame_norm=False)
    assert set(without.state_dict()) == set(with_norm.state_dict()) - {"net.0.weight", "net.0.bias"}
    x = torch.randn(3, 6) * 5 + 2
    assert torch.allclose(without(x), without.net[3](without.net[2](without.net[1](x))))
