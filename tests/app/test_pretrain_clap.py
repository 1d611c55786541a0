"""The pretrain stage's CLAP: the contrastive loss falls, the directory loads through the clap
encoder plugin with the same audio embeddings, and the CLAP score is the embeddings' cosine."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from c3llm.app.foundation.dataset import FoundationDataConfig, read_corpus, write_corpus
from c3llm.app.pretrain.clap import save_clap, train_clap
from c3llm.app.pretrain.clap_score import ClapScorer
from c3llm.app.pretrain.settings import ClapPretrainConfig
from c3llm.app.training.loop import OptimConfig
from c3llm.core.errors import ConfigError, InputError
from c3llm.core.media import Audio
from c3llm.core.registry import get_registry


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("clap")
    data = FoundationDataConfig(clips=16, seconds=1.0, video_clips=0, captions_per_clip=2)
    write_corpus(data, work / "corpus", progress=False)
    corpus = read_corpus(work / "corpus", data)
    clips = [Audio(a[None], 16000) for a in corpus.audio]
    config = ClapPretrainConfig(text_hidden=32, text_vocab_size=200, max_tokens=32,
                                train=OptimConfig(steps=40, batch_size=8, lr=2e-3, warmup_steps=2, log_every=5,
                                                  tensorboard=False))
    encoder, model, tokenizer, history = train_clap(get_registry(), config, clips, corpus.captions, work / "work",
                                                    progress=False)
    save_clap(encoder, model, tokenizer, work / "clap")
    return model, history, clips, corpus.captions, work / "clap"


def test_contrastive_loss_falls(trained):
    _, history, _, _, _ = trained
    first = sum(r["loss"] for r in history[:5]) / 5
    last = sum(r["loss"] for r in history[-5:]) / 5
    assert last < first - 0.2, (first, last)


def test_clap_directory_loads_through_the_encoder_plugin(trained):
    model, _, clips, _, folder = trained
    encoder = get_registry().build("encoder", {"name": "clap", "preset": "tiny", "pretrained": str(folder),
                                               "num_local_frames": 4})
    encoder.load_pretrained()
    features = encoder(clips[:3])  # (3, 1 + 4, P): the global embedding first
    scorer = ClapScorer(folder)
    want = scorer.audio_embeddings(clips[:3])
    torch.testing.assert_close(features.embeds[:, 0], want, atol=1e-5, rtol=1e-4)
    with torch.no_grad():  # and the same as the model in memory
        windows = encoder.extractor([c.to(48000, channels=1).waveform[0].double().numpy() for c in clips[:3]],
                                    sampling_rate=48000, return_tensors="pt", truncation="rand_trunc", padding="repeatpad")
        out = model.audio_model(input_features=windows["input_features"].float(),
                                is_longer=torch.zeros(3, 1, dtype=torch.bool))
        memory = F.normalize(model.audio_projection(out.pooler_output), dim=-1)
    torch.testing.assert_close(memory, want, atol=1e-5, rtol=1e-4)


def test_clap_score_is_the_cosine(trained):
    _, _, clips, captions, folder = trained
    scorer = ClapScorer(folder)
    texts = [c[0] for c in captions[:4]]
    scores = scorer.score(clips[:4], texts)
    manual = (scorer.audio_embeddings(clips[:4]) * scorer.text_embeddings(texts)).sum(-1)
    torch.testing.assert_close(scores, manual)
    assert scores.shape == (4,) and bool((scores.abs() <= 1 + 1e-5).all())
    retrieval = scorer.retrieval(clips[:4], texts)
    assert 0 <= retrieval["top1"] <= 1 and retrieval["chance_top1"] == 0.25
    with pytest.raises(InputError, match="as many texts"):
        scorer.score(clips[:2], texts)


def test_bad_clap_configs_are_refused(tmp_path):
    clips = [Audio(torch.zeros(1, 1600), 16000)] * 2
    with pytest.raises(ConfigError, match="must not load weights"):
        train_clap(get_registry(), ClapPretrainConfig(encoder={"name": "clap", "pretrained": "/x"}), clips,
                   [["a"], ["b"]], tmp_path)
    with pytest.raises(ConfigError, match="same number of captions"):
        train_clap(get_registry(), ClapPretrainConfig(), clips, [["a"], ["b", "c"]], tmp_path)
