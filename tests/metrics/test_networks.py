"""Reference classifier training, PANNs CNN14 / VGGish checkpoint loading, encoder embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from metric_helpers import audio

from c3llm.core.errors import CheckpointError, UnavailableError
from c3llm.core.roles.encoder import Features
from c3llm.plugins.metrics.frechet import FrechetConfig, FrechetDistance
from c3llm.plugins.metrics.kl import KLConfig, KLDivergence
from c3llm.scoring.embedders import (
    Cnn14,
    Cnn14Config,
    EncoderEmbedder,
    PannsCnn14,
    VGGish,
    VGGishNet,
    vggish_mel_matrix,
)
from c3llm.scoring.reference_classifier import (
    ReferenceClassifier,
    ReferenceClassifierConfig,
    ReferenceTrainingConfig,
    train_reference_classifier,
)

SR = 16000


def toy_clip(kind: str, rng: np.random.Generator):
    n = SR // 2
    t = np.arange(n) / SR
    if kind == "tone":
        y = 0.5 * np.sin(2 * np.pi * rng.uniform(300, 600) * t + rng.uniform(0, 6))
    elif kind == "noise":
        y = rng.normal(0, 0.2, n)
    else:  # clicks
        y = np.zeros(n)
        for start in rng.choice(n - 200, size=3, replace=False):
            y[start : start + 200] += rng.normal(0, 0.8, 200) * np.exp(-np.arange(200) / 30)
    return audio(y * rng.uniform(0.5, 1.0) + rng.normal(0, 0.005, n), SR)


def test_reference_classifier_learns_three_classes_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    kinds = ["tone", "noise", "click"] * 16
    clips = [toy_clip(k, rng) for k in kinds]
    config = ReferenceTrainingConfig(
        model=ReferenceClassifierConfig(n_mels=24, channels=(8, 16), embedding_dim=16),
        epochs=12, batch_size=12, heldout_fraction=0.25,
    )
    classifier, report = train_reference_classifier(clips, kinds, config, tmp_path / "ref")
    assert report["num_heldout"] == 12 and report["heldout_accuracy"] > 0.9
    assert json.loads((tmp_path / "ref" / "labels.json").read_text()) == ["click", "noise", "tone"]
    loaded = ReferenceClassifier.from_directory(tmp_path / "ref")
    probe = [toy_clip(k, rng) for k in ("tone", "noise", "click")]
    assert np.allclose(loaded.logits(probe), classifier.logits(probe), atol=1e-5)
    assert loaded.embed(probe).shape == (3, 16)
    # metrics pick it up by path and name their scores *_synth
    kl = KLDivergence(KLConfig(embedder="synth-classifier", embedder_path=str(tmp_path / "ref")))
    assert set(kl.compute(probe, probe)) == {"kl_synth"}
    assert kl.compute(probe, probe)["kl_synth"] == pytest.approx(0.0, abs=1e-9)
    fd = FrechetDistance(FrechetConfig(embedder_path=str(tmp_path / "ref")))
    assert set(fd.compute(probe, probe)) == {"fd_synth"}
    with pytest.raises(UnavailableError, match="no reference classifier"):
        ReferenceClassifier.from_directory(tmp_path / "missing")


TINY_CNN14 = Cnn14Config(sample_rate=16000, window_size=512, hop_size=160, mel_bins=32, fmin=50, fmax=8000,
                         classes_num=5, widths=(4, 8, 8, 8, 8, 16))


def test_panns_checkpoint_round_trip(tmp_path):
    model = Cnn14(TINY_CNN14)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    state = {k: v for k, v in model.state_dict().items()}
    # the released checkpoints also carry torchlibrosa's fixed STFT kernels and the mel matrix
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(257, 1, 512)
    state["logmel_extractor.melW"] = model.frontend.mel_basis.clone()
    path = tmp_path / "Cnn14_tiny.pth"
    torch.save({"model": state, "iteration": 0}, path)
    panns = PannsCnn14.from_checkpoint(path, TINY_CNN14)
    clips = [audio(np.random.default_rng(i).normal(0, 0.1, 16000), 16000) for i in range(3)]
    model.eval()
    from c3llm.scoring.embedders import mono_batch

    with torch.no_grad():
        emb, logits = model(mono_batch(clips, 16000))
    assert np.allclose(panns.embed(clips), emb.numpy(), atol=1e-5)
    assert np.allclose(panns.logits(clips), logits.numpy(), atol=1e-5)
    assert panns.embed(clips).shape == (3, 16) and panns.logits(clips).shape == (3, 5)
    with pytest.raises(CheckpointError, match="Cnn14Config"):
        PannsCnn14.from_checkpoint(path, Cnn14Config())
    with pytest.raises(UnavailableError, match="embedder_path"):
        PannsCnn14.from_checkpoint(None)


def test_vggish_front_end_and_frame_embeddings(tmp_path):
    mel = vggish_mel_matrix()
    assert mel.shape == (64, 257) and mel[:, 0].sum() == 0 and mel.max() == pytest.approx(1.0, abs=0.05)
    net = VGGishNet(widths=(4, 4, 4, 4, 8, 8), hidden=16, out_dim=6)
    torch.save(net.state_dict(), tmp_path / "vggish_tiny.pth")
    vggish = VGGish(net)
    clip = audio(np.random.default_rng(0).normal(0, 0.1, 2 * 16000 + 500), 16000)
    assert vggish.examples(clip).shape == (2, 1, 96, 64)  # two whole 0.96 s examples
    rows = vggish.embed([clip, clip])
    assert rows.shape == (4, 6)
    fd = FrechetDistance(FrechetConfig(embedder="vggish"))
    fd.use_network(vggish)
    assert list(fd.compute([clip, clip], [clip, clip])) == ["fad"]
    with pytest.raises(UnavailableError, match="vggish-10086976"):
        VGGish.from_checkpoint(tmp_path / "absent.pth")


def test_encoder_embedder_masks_padding():
    class FakeClap(torch.nn.Module):
        modality = "audio"

        def forward(self, media):
            embeds = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]]).repeat(len(media), 1, 1)
            mask = torch.tensor([[True, True, False]]).repeat(len(media), 1)
            return Features(embeds, mask)

    embedder = EncoderEmbedder(FakeClap())
    rows = embedder.embed([audio(np.zeros(100), 16000)] * 3)
    assert rows.shape == (3, 2) and np.allclose(rows, 2.0)
    fd = FrechetDistance(FrechetConfig(embedder="clap"))
    fd.use_network(embedder)
    assert fd.key() == "fd_clap"
