"""The ``mel-rvq`` decoder plugin: it learns (loss falls, codes carry the clip), codebook 2 refines
codebook 1, it does not collapse, save/load round trip, errors."""

from __future__ import annotations

import json

import pytest
import torch

from c3llm.app.training.codec import mel_distance, synthetic_clips
from c3llm.core.errors import CheckpointError, InputError
from c3llm.core.registry import get_registry
from c3llm.plugins.decoders.mel_rvq import MelRVQCodec, MelRVQCodecConfig

SR = 8000
SMALL = dict(sample_rate=SR, n_fft=256, stft_hop=64, frames_per_code=2, n_mels=24, codebook_size=32, width=32,
             latent_dim=16, num_res_blocks=1, griffin_lim_iters=16, fit_steps=300, fit_batch=16, fit_crop_frames=16)


def small_codec(**overrides) -> MelRVQCodec:
    return MelRVQCodec(MelRVQCodecConfig(**{**SMALL, **overrides}))


@pytest.fixture(scope="module")
def clips():
    return synthetic_clips(24, 1.0, SR, seed=3)


@pytest.fixture(scope="module")
def trained(clips):
    torch.manual_seed(0)
    codec = small_codec()
    report = codec.fit(clips[:20], iters=10)
    return codec, report


def test_training_lowers_the_loss_and_resynthesis_beats_an_untrained_codec(trained, clips):
    codec, report = trained
    curve = report["curve"]
    assert curve[-1]["log_l1"] < 0.7 * curve[0]["log_l1"], curve
    untrained = small_codec()
    untrained.feature_mean.copy_(codec.feature_mean)
    untrained.feature_std.copy_(codec.feature_std)
    held_out = clips[20:]
    def distance(c):
        return sum(mel_distance(c.decode(c.encode(w[None]))[..., : w.shape[-1]], w[None], SR) for w in held_out)
    assert distance(codec) < 0.8 * distance(untrained)


def test_codes_shapes_and_codebook_two_refines_codebook_one(trained, clips):
    codec, _ = trained
    wav = torch.stack(clips[20:23])  # (3, 1, T)
    codes = codec.encode(wav)
    assert codes.shape == (3, 2, -(-wav.shape[-1] // codec.hop_length)) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < codec.cardinality
    both = codec.decode(codes)[..., : wav.shape[-1]]
    first = codec.decode(codes[:, :1])[..., : wav.shape[-1]]
    assert both.shape == wav.shape
    assert mel_distance(both, wav, SR) < mel_distance(first, wav, SR)  # RVQ: codebook 2 adds detail


def test_not_collapsed_codes_and_outputs_differ_per_clip(trained, clips):
    from c3llm.app.training.codec import collapse_spread

    codec, _ = trained
    held_out = clips[:12]
    codes = [codec.encode(w[None])[0] for w in held_out]
    decoded = [codec.decode(c[None])[0, :, : w.shape[-1]] for c, w in zip(codes, held_out)]
    assert collapse_spread(decoded, held_out, SR) > 0.5
    used = torch.cat([c[0] for c in codes]).unique().numel()
    assert used >= codec.cardinality // 4, used


def test_save_and_reload_give_identical_codes_and_audio(trained, clips, tmp_path):
    codec, _ = trained
    folder = codec.save_pretrained(tmp_path / "codec")
    record = json.loads((folder / "config.json").read_text())
    assert record["format"] == "c3llm-mel-rvq" and record["training"]["fit_steps"] == SMALL["fit_steps"]
    loaded = get_registry().build("decoder", {"name": "mel-rvq", **SMALL, "pretrained": str(folder)})
    loaded.load_pretrained()
    wav = clips[21][None]
    assert torch.equal(loaded.encode(wav), codec.encode(wav))
    assert torch.equal(loaded.decode(codec.encode(wav)), codec.decode(codec.encode(wav)))
    other = small_codec(latent_dim=8, pretrained=str(folder))
    with pytest.raises(CheckpointError, match="latent_dim: config 8 vs checkpoint 16"):
        other.load_pretrained()
    with pytest.raises(CheckpointError, match="not a mel-rvq codec directory"):
        small_codec(pretrained=str(tmp_path)).load_pretrained()


def test_bad_training_audio_is_refused():
    codec = small_codec(fit_steps=2)
    with pytest.raises(InputError, match="at least 16 code frames"):
        codec.fit([torch.zeros(1, 100)], iters=2)
    bad = torch.zeros(1, SR)
    bad[0, 10] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        codec.fit([bad], iters=2)
