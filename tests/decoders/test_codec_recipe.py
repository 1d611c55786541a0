"""Issue 11's codec recipe: the foundation corpus, LSUV init, the dead-code rule, the collapse
detector, and a short run where LSUV + foundation audio trains while the old recipe collapses."""

from __future__ import annotations

import pytest
import torch

from c3llm.app.foundation import foundation_clip, foundation_clips
from c3llm.app.training.codec import (
    COLLAPSED_BELOW,
    CodecTrainConfig,
    collapse_spread,
    evaluate_codec,
    train_codec,
)
from c3llm.core.spectral import mel_spectrogram
from c3llm.plugins.decoders.encodec import EncodecCodec
from c3llm.plugins.decoders.encodec_init import seanet_convs
from c3llm.plugins.decoders.encodec_vq import (
    CodebookLearning,
    ema_update_,
    expire_dead_codes_,
)

# -- the foundation corpus ------------------------------------------------------------------


def test_foundation_clips_are_deterministic_per_seed_and_index():
    a = foundation_clips(3, 0.5, seed=5, sample_rate=8000)
    b = foundation_clips(3, 0.5, seed=5, sample_rate=8000)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (1, 4000) and a[0].dtype == torch.float32
    # clip i depends only on (seed, i): drawing from another start gives the same clip
    later = foundation_clips(1, 0.5, seed=5, sample_rate=8000, start=2)[0]
    assert torch.equal(later, a[2])
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[0], foundation_clips(1, 0.5, seed=6, sample_rate=8000)[0])


def test_foundation_clips_vary_in_level_and_spectrum_and_are_never_silent():
    clips = foundation_clips(24, 1.0, seed=0, sample_rate=16_000)
    x = torch.cat(clips)  # (N, T)
    assert x.abs().max() <= 1.0 and torch.isfinite(x).all()
    rms_db = 10 * torch.log10(x.pow(2).mean(-1))  # (N,)
    assert (rms_db > -70).all(), f"an all-silent clip: {rms_db.min():.1f} dB"
    assert rms_db.max() - rms_db.min() > 10, "levels should vary by more than 10 dB"
    mel = mel_spectrogram(x[:, None], 16_000, 1024, 32).mean(-1)[:, 0]  # (N, bands)
    centroid = (mel * torch.arange(32)).sum(-1) / mel.sum(-1)  # spectral centroid in bands
    assert centroid.max() - centroid.min() > 5, f"spectra barely differ: centroids {centroid.tolist()}"
    assert len({int(b) for b in mel.argmax(-1)}) >= 4, "the loudest band should differ between clips"
    assert foundation_clip(0, 3, 1.0).shape == (16_000,)


# -- LSUV init -------------------------------------------------------------------------------


def test_lsuv_gives_every_conv_unit_output_std_on_the_probe_batch(tiny_config):
    torch.manual_seed(0)
    codec = EncodecCodec(tiny_config())
    probe = torch.cat(foundation_clips(6, 0.25, seed=1, sample_rate=8000))[:, None]  # (B, 1, T)
    codec.initialise(probe)
    convs = seanet_convs(codec.model.encoder) + seanet_convs(codec.model.decoder)
    stds: dict[int, float] = {}
    hooks = [c.register_forward_hook(lambda m, i, out, k=k: stds.__setitem__(k, float(out.std())))
             for k, c in enumerate(convs)]
    with torch.no_grad():
        out = codec.model.decoder(codec.model.encoder(probe))
    for h in hooks:
        h.remove()
    inner = [stds[k] for k in range(len(convs) - 1)]
    assert all(abs(s - 1) < 0.05 for s in inner), f"conv output stds after LSUV: {inner}"
    assert float(out.std()) == pytest.approx(float(probe.std()), rel=0.05)  # the last conv: the audio's level
    # weight norm stays consistent: weight = g * v / ||v|| (g, not only the computed weight, was scaled)
    wn = convs[0].parametrizations.weight
    v, g = wn.original1, wn.original0
    assert torch.allclose(convs[0].weight, g * v / v.norm(dim=(1, 2), keepdim=True), atol=1e-6)


def test_initialise_keeps_pretrained_weights(tiny_config, tmp_path):
    torch.manual_seed(0)
    EncodecCodec(tiny_config()).save_pretrained(tmp_path)
    codec = EncodecCodec(tiny_config(pretrained=str(tmp_path)))
    codec.load_pretrained()
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    codec.initialise(torch.randn(2, 1, 2000))
    assert all(torch.equal(before[k], v) for k, v in codec.state_dict().items())


# -- the dead-code rule ----------------------------------------------------------------------


def _occasional_use(rule: CodebookLearning, codec: EncodecCodec, steps: int = 200) -> list[int]:
    """Each step assigns 8 frames to 8 of the 64 entries in turn (each entry used once per 8
    steps, ~0.1 frames per entry per step: a CPU batch). :return: entries re-seeded per step."""
    codebook = codec.model.quantizer.layers[0].codebook
    codebook.cluster_size.fill_(0.125)
    gen = torch.Generator().manual_seed(0)
    replaced = []
    for step in range(steps):
        samples = torch.randn(8, codebook.embed.shape[1], generator=gen)
        assign = torch.arange(8) + 8 * (step % 8)
        ema_update_(codebook, samples, assign, rule)
        replaced.append(expire_dead_codes_(codebook, samples, rule))
    return replaced


def test_dead_code_rule_keeps_entries_used_occasionally(codec):
    assert CodebookLearning().dead_code_threshold == 0.02 == CodecTrainConfig().dead_code_threshold
    assert sum(_occasional_use(CodebookLearning(), codec)) == 0
    # the old threshold (an absolute count of 2) re-seeded every entry on every step
    assert set(_occasional_use(CodebookLearning(dead_code_threshold=2.0), codec)) == {64}


# -- the collapse detector -------------------------------------------------------------------


class _PCM16:
    """A reasonable codec: 16-bit PCM (codes = quantised samples)."""

    sample_rate, device = 8000, torch.device("cpu")

    def encode(self, wav):
        return ((wav.clamp(-1, 1) + 1) * 32767.5).round().long()

    def decode(self, codes):
        return codes.float() / 32767.5 - 1


class _Constant(_PCM16):
    """A collapsed codec: the same waveform whatever the input."""

    def decode(self, codes):
        return 0.1 * torch.sin(torch.arange(codes.shape[-1]) * 0.3).expand(codes.shape).clone()


def test_collapse_detector_flags_a_constant_codec_and_passes_a_reasonable_one():
    clips = foundation_clips(6, 0.5, seed=2, sample_rate=8000)
    good, bad = evaluate_codec(_PCM16(), clips), evaluate_codec(_Constant(), clips)
    assert good["spread"] == pytest.approx(1.0, abs=0.15) and not good["collapsed"]
    assert bad["spread"] < 1e-6 < COLLAPSED_BELOW and bad["collapsed"]
    assert collapse_spread(clips, clips, 8000) == pytest.approx(1.0)


# -- a short training run --------------------------------------------------------------------


def _train(tiny_config, tmp_path, **keys) -> dict:
    torch.manual_seed(0)
    codec = EncodecCodec(tiny_config(total_codebooks=2))
    config = CodecTrainConfig(steps=40, batch_size=4, segment_seconds=0.25, refit_codebooks=False,
                              mel_scales=(64, 128, 256, 512), log_every=1000, **keys)
    train = foundation_clips(24, 1.0, seed=3, sample_rate=8000)
    held_out = foundation_clips(6, 1.0, seed=99, sample_rate=8000)
    report = train_codec(codec, train, config, tmp_path, eval_data=held_out, progress=False)
    return {**report["quality_after"], "before": report["quality_before"]["mel_distance"]}


def test_lsuv_and_foundation_audio_train_without_collapse_where_the_old_recipe_collapses(tiny_config, tmp_path):
    new = _train(tiny_config, tmp_path / "new")  # defaults: init "lsuv", dead-code threshold 0.02
    assert not new["collapsed"] and new["spread"] > 0.4, new
    assert new["mel_distance"] < new["before"]
    old = _train(tiny_config, tmp_path / "old", init="none", dead_code_threshold=2.0)
    assert old["collapsed"], old
    assert new["mel_distance"] < old["mel_distance"]
