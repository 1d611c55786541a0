"""The pretrain stage's text LM: the causal-LM loss falls, and the saved directory loads through
the gemma plugin's own loader (and into a pipeline with LoRA) with the same outputs."""

from __future__ import annotations

import pytest
import torch

from c3llm.app.foundation.annotated import annotated_clip
from c3llm.app.foundation.captions import captions_for
from c3llm.app.pretrain.lm import save_lm, token_table, train_lm
from c3llm.app.pretrain.settings import LMPretrainConfig
from c3llm.app.training.loop import OptimConfig
from c3llm.core.errors import ConfigError
from c3llm.core.registry import get_registry

TINY = {"name": "gemma", "preset": "tiny", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
        "intermediate_size": 64, "tokenizer_vocab_size": 128}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    texts = [c for i in range(12) for c in captions_for(annotated_clip(0, i, 2.0), 0, i, 2)]
    config = LMPretrainConfig(backbone=TINY, max_tokens=32,
                              train=OptimConfig(steps=40, batch_size=8, lr=5e-3, warmup_steps=2, log_every=5,
                                                tensorboard=False))
    work = tmp_path_factory.mktemp("lm")
    backbone, history = train_lm(get_registry(), config, texts, work / "work", progress=False)
    save_lm(backbone, work / "lm")
    return backbone, history, texts, work / "lm"


def test_lm_loss_falls(trained):
    _, history, _, _ = trained
    first = sum(r["loss"] for r in history[:5]) / 5
    last = sum(r["loss"] for r in history[-5:]) / 5
    assert last < first - 0.3, (first, last)


def test_lm_directory_loads_through_the_plugin_with_the_same_outputs(trained):
    backbone, _, texts, folder = trained
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in folder.iterdir()}
    loaded = get_registry().build("backbone", {"name": "gemma", "pretrained": str(folder), "mode": "lora"})
    loaded.load_pretrained()
    ids, mask = token_table(backbone, texts[:4], 32)
    assert loaded.tokenize(texts[:4]) == backbone.tokenize(texts[:4])
    with torch.no_grad():
        want = backbone.model(input_ids=ids, attention_mask=mask.long()).logits
        got = loaded.model(input_ids=ids, attention_mask=mask.long()).logits
    torch.testing.assert_close(got, want)


def test_lm_loads_into_a_pipeline_with_lora(trained):
    from c3llm import sdk

    backbone, _, texts, folder = trained
    pipe = sdk.Pipeline.from_plugins(decoder={"name": "melvq", "codebook_size": 16, "num_codebooks": 2},
                                     backbone={"name": "gemma", "pretrained": str(folder), "mode": "lora", "lora_r": 2})
    lm = pipe.model.backbone
    assert any("lora" in n for n, p in lm.named_parameters() if p.requires_grad)
    ids, mask = token_table(backbone, texts[:2], 32)
    vocab = backbone.tokenizer.get_vocab_size()
    with torch.no_grad():
        want = backbone.model(input_ids=ids, attention_mask=mask.long()).logits
        lm.eval()
        got = lm.logits(lm(lm.embed(ids), mask.long()).hidden, rows=slice(0, vocab))
    torch.testing.assert_close(got[mask], want[mask], atol=1e-4, rtol=1e-4)


def test_a_pretrained_backbone_table_is_refused(tmp_path):
    config = LMPretrainConfig(backbone={"name": "gemma", "pretrained": "/x"})
    with pytest.raises(ConfigError, match="random preset"):
        train_lm(get_registry(), config, ["a tone"], tmp_path)
