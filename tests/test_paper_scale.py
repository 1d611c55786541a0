"""Paper-scale code paths on small files in the real formats: a pretrained (HF-directory)
LoRA backbone keeps what it learned through LM + NAR training, save and reload."""

from __future__ import annotations

import torch
from test_configs import write_scaled_down

from c3llm import sdk
from c3llm.app.training.loop import OptimConfig, Trainer
from c3llm.app.training.tasks import (
    LMObjective,
    NARObjective,
    NARSampler,
    TaskSampler,
    TaskWeights,
    freeze_for_stage,
)

CAPTIONS = ["a dog barks", "a high beep repeats three times", "rain on a roof"]


def pretrained_lora_pipeline(directory, dtype: str = "float32") -> sdk.Pipeline:
    return sdk.Pipeline.from_plugins(
        decoder="encodec",
        backbone={"name": "gemma", "pretrained": str(directory), "mode": "lora", "lora_r": 4, "dtype": dtype},
        refiner={"name": "nar", "dim": 32, "num_layers": 1, "num_heads": 2},
    )


def random_items(pipe: sdk.Pipeline, frames: int = 6) -> list[dict]:
    decoder = pipe.model.decoder
    g = torch.Generator().manual_seed(0)
    return [{"id": str(i), "captions": (c,),
             "codes": torch.randint(decoder.cardinality, (decoder.num_codebooks, frames), generator=g)}
            for i, c in enumerate(CAPTIONS)]


def adapted(backbone) -> dict[str, torch.Tensor]:
    """The LoRA factors and the new token rows, by name."""
    return {n: p.detach().clone() for n, p in backbone.named_parameters()
            if "lora_" in n or "trainable_tokens" in n}


def test_pretrained_lora_backbone_keeps_its_training_through_nar_save_and_reload(tmp_path):
    """The NAR stage freezes the backbone before the pipeline is saved; the checkpoint must
    still hold the LoRA and new-row weights the LM stage trained (it used to hold nothing)."""
    directory = write_scaled_down("gemma", tmp_path / "gemma")
    pipe = pretrained_lora_pipeline(directory)
    model = pipe.model
    items = random_items(pipe)
    before = adapted(model.backbone)
    assert any("lora_" in n for n in before) and any("trainable_tokens" in n for n in before)
    weights = TaskWeights(t2a=1.0, v2a=0.0, a2t=0.0)
    optim = OptimConfig(steps=3, lr=5e-2, warmup_steps=0, checkpoint_every=100, tensorboard=False)
    freeze_for_stage(model, "lm")  # the calls stage_train makes, in its order
    Trainer(LMObjective(model), TaskSampler(items, model.sequences, weights, 3), optim, tmp_path / "lm",
            name="lm", progress=False).run()
    freeze_for_stage(model, "nar")
    Trainer(NARObjective(model), NARSampler(items, weights, 3), optim, tmp_path / "nar",
            name="nar", progress=False).run()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    trained = adapted(model.backbone)
    assert any(not torch.equal(trained[n], before[n]) for n in trained if "lora_B" in n)
    assert any(not torch.equal(trained[n], before[n]) for n in trained if "trainable_tokens" in n)

    saved = pipe.save_pretrained(tmp_path / "pipeline")
    reloaded = adapted(sdk.Pipeline.from_pretrained(saved).model.backbone)
    assert reloaded.keys() == trained.keys()
    for name, value in trained.items():
        assert torch.equal(reloaded[name], value), name


def test_new_token_rows_start_at_the_mean_row_and_keep_the_head_tied(tmp_path):
    """The vocabulary growth that replaced transformers' covariance-sampling resize (32-65 s at
    Gemma-2B dims): old rows unchanged, new rows the old rows' mean, a tied head still tied,
    an untied head grown the same way."""
    from transformers import AutoModelForCausalLM

    from c3llm.plugins.backbones.vocabulary import grow_token_rows

    for kind in ("gemma", "llama"):
        directory = write_scaled_down(kind, tmp_path / kind)
        hf = AutoModelForCausalLM.from_pretrained(directory)
        old_rows = hf.get_input_embeddings().weight.detach().clone()
        old_head = hf.get_output_embeddings().weight.detach().clone()
        tied = hf.get_output_embeddings().weight is hf.get_input_embeddings().weight
        assert tied == (kind == "gemma")
        grow_token_rows(hf, old_rows.shape[0] + 5)
        emb, head = hf.get_input_embeddings(), hf.get_output_embeddings()
        assert emb.weight.shape[0] == head.weight.shape[0] == hf.config.vocab_size == old_rows.shape[0] + 5
        assert (head.weight is emb.weight) == tied
        torch.testing.assert_close(emb.weight[: len(old_rows)], old_rows, rtol=0, atol=0)
        torch.testing.assert_close(emb.weight[len(old_rows):], old_rows.mean(0).expand(5, -1), rtol=0, atol=1e-6)
        torch.testing.assert_close(head.weight[len(old_head):], old_head.mean(0).expand(5, -1), rtol=0, atol=1e-6)
        ids = torch.tensor([[1, len(old_rows) + 2]])
        assert hf(input_ids=ids).logits.shape == (1, 2, len(old_rows) + 5)
