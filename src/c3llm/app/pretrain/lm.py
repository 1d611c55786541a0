"""Pretraining the text LM: a backbone preset as a causal LM on foundation captions.

The architecture is the backbone plugin's random preset, built through the registry; its
tokenizer is trained on the captions (``tokenizer_corpus``). The result is a Hugging Face
model directory (``config.json``, ``model.safetensors``, ``tokenizer.json`` + the
tokenizer config files) that ``backbone.pretrained = DIR`` (``mode = "lora"``) loads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from c3llm.app.pretrain.settings import LMPretrainConfig
from c3llm.app.training.loop import Trainer
from c3llm.core.errors import ConfigError, PluginError

log = logging.getLogger(__name__)


def build_preset_backbone(registry, config: LMPretrainConfig, texts: Sequence[str]):
    """The backbone preset of ``config.backbone`` with a tokenizer trained on ``texts``; its
    transformers model (``.model``) and tokenizer (``.tokenizer``) are what get trained."""
    spec = dict(config.backbone)
    if spec.get("pretrained"):
        raise ConfigError("pretrain.lm.backbone must be a random preset (no pretrained = ...): "
                          "the pretrain stage makes the pretrained model")
    spec.setdefault("tokenizer_corpus", list(texts))
    backbone = registry.build("backbone", spec, where="pretrain.lm.backbone")
    if not isinstance(getattr(backbone, "model", None), nn.Module) or not hasattr(backbone, "tokenizer"):
        raise PluginError(f"pretrain.lm: backbone {spec.get('name')!r} exposes no transformers model (.model) and "
                          "tokenizer (.tokenizer) to pretrain; use a transformers backbone such as gemma or llama")
    if not hasattr(backbone.model, "save_pretrained"):
        raise PluginError(f"pretrain.lm: backbone {spec.get('name')!r} is not a transformers model")
    return backbone


def token_table(backbone, texts: Sequence[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[bos] caption [eos]`` per text, right-padded: ids ``(N, L)`` and mask ``(N, L)``."""
    cfg = backbone.model.config
    bos, eos, pad = cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id
    rows = [([bos] if bos is not None else []) + ids[: max_tokens - 2] + [eos] for ids in backbone.tokenize(list(texts))]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad if pad is not None else eos, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = True
    return ids, mask


class CausalLMObjective(nn.Module):
    """Next-token cross-entropy over the real tokens of each caption."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        ids, mask = batch  # (B, L), (B, L)
        length = int(mask.sum(1).max())
        ids, mask = ids[:, :length], mask[:, :length]
        labels = ids.masked_fill(~mask, -100)
        loss = self.model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
        return loss, {"loss": float(loss.detach())}


class RowSampler:
    """Batch ``step`` = rows drawn uniformly with a generator seeded by ``(seed, step, rank)``."""

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, seed: int):
        self.tensors, self.batch_size, self.seed = tensors, batch_size, seed

    def __call__(self, step: int, rank: int = 0):
        g = torch.Generator().manual_seed(hash((self.seed, step, rank)) & 0x7FFF_FFFF_FFFF)
        index = torch.randint(self.tensors[0].shape[0], (self.batch_size,), generator=g)
        return tuple(t[index] for t in self.tensors)


def train_lm(registry, config: LMPretrainConfig, texts: Sequence[str], work_dir: Path, *, seed: int = 0,
             progress: bool = True) -> tuple[Any, list[dict[str, float]]]:
    """The preset backbone trained on ``texts`` (its ``.model`` in eval mode) and the loss history;
    ``work_dir`` keeps the resumable checkpoint."""
    if not texts:
        raise ConfigError("pretrain.lm: the foundation corpus has no captions")
    torch.manual_seed(seed)
    backbone = build_preset_backbone(registry, config, texts)
    model = backbone.model
    model.requires_grad_(True)
    ids, mask = token_table(backbone, texts, config.max_tokens)
    log.info("pretrain lm: %d captions, %d tokens, vocabulary %d, %d parameters", len(texts), int(mask.sum()),
             backbone.tokenizer.get_vocab_size(), sum(p.numel() for p in model.parameters()))
    history = Trainer(CausalLMObjective(model), RowSampler((ids, mask), config.train.batch_size, seed), config.train,
                      work_dir, name="pretrain-lm", seed=seed, progress=progress).run()
    model.eval().requires_grad_(False)
    return backbone, history


def save_lm(backbone, out_dir: Path) -> None:
    """Write the Hugging Face directory: config.json, model.safetensors, tokenizer files."""
    from transformers import PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    backbone.model.save_pretrained(out_dir, safe_serialization=True)
    special = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}
    vocab = backbone.tokenizer.get_vocab()
    PreTrainedTokenizerFast(tokenizer_object=backbone.tokenizer,
                            **{k: v for k, v in special.items() if v in vocab}).save_pretrained(out_dir)


def pretrain_lm(registry, config: LMPretrainConfig, texts: Sequence[str], out_dir: Path, work_dir: Path, *,
                seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Train the LM and write it into ``out_dir``; returns a report (losses, sizes)."""
    backbone, history = train_lm(registry, config, texts, work_dir, seed=seed, progress=progress)
    save_lm(backbone, out_dir)
    return {"captions": len(texts), "parameters": sum(p.numel() for p in backbone.model.parameters()),
            "vocabulary": backbone.tokenizer.get_vocab_size(), "steps": config.train.steps,
            "loss_first": _mean(history[:20]), "loss_last": _mean(history[-20:])}


def _mean(records: list[dict[str, float]]) -> float | None:
    values = [r["loss"] for r in records if "loss" in r]
    return round(sum(values) / len(values), 4) if values else None
