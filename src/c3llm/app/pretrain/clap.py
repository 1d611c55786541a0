"""Pretraining CLAP: the encoder plugin's HTSAT audio tower and a small RoBERTa-style text
tower, trained with CLAP's symmetric InfoNCE on (foundation clip, one of its captions).

The audio tower is the architecture the ``clap`` encoder builds for its preset (read from the
component the registry builds); the model is transformers' ``ClapModel``, whose forward with
``return_loss=True`` is the contrastive loss. Audio is prepared exactly as the encoder
prepares it (48 kHz mono, CLAP's extractor, repeat-padded 10 s windows), once, before
training. The result is a transformers CLAP directory (``config.json``, ``model.safetensors``,
``preprocessor_config.json``, tokenizer files) that ``audio_encoder.pretrained = DIR`` loads;
:mod:`.clap_score` scores audio against text with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from c3llm.app.pretrain.lm import RowSampler, _mean
from c3llm.app.pretrain.settings import ClapPretrainConfig
from c3llm.app.training.loop import Trainer
from c3llm.core.errors import ConfigError, PluginError
from c3llm.core.media import Audio
from c3llm.core.progress import progress_bar

log = logging.getLogger(__name__)

#: RoBERTa's special tokens, in id order (ClapTextModel is a RoBERTa)
TEXT_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


def build_audio_encoder(registry, config: ClapPretrainConfig):
    """The CLAP encoder component of ``config.encoder`` (random init): its ``.model`` is the
    audio tower whose architecture is pretrained, its ``.extractor`` the feature extractor."""
    spec = dict(config.encoder)
    if spec.get("pretrained") or spec.get("hub_id"):
        raise ConfigError("pretrain.clap.encoder must not load weights (pretrained / hub_id): the pretrain "
                          "stage makes them")
    encoder = registry.build("encoder", spec, where="pretrain.clap.encoder")
    model = getattr(encoder, "model", None)
    if getattr(getattr(model, "config", None), "model_type", None) != "clap_audio_model" or not hasattr(encoder, "extractor"):
        raise PluginError(f"pretrain.clap: encoder {spec.get('name')!r} is not a transformers CLAP audio tower "
                          "(.model ClapAudioModelWithProjection, .extractor); use the clap encoder")
    return encoder


def train_text_tokenizer(texts: Sequence[str], vocab_size: int):
    """A lower-cased byte-level BPE over the captions with RoBERTa's special tokens."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(TEXT_SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tokenizer


def text_table(tokenizer, texts: Sequence[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``<s> caption </s>`` ids ``(N, L)`` padded with ``<pad>``, and the mask ``(N, L)``."""
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(pad_id=1, pad_token="<pad>")
    encodings = tokenizer.encode_batch(list(texts))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
    return ids, torch.tensor([e.attention_mask for e in encodings], dtype=torch.bool)


def audio_features(encoder, clips: Sequence[Audio], *, progress: bool = True) -> torch.Tensor:
    """CLAP input features ``(N, C, frames, mels)`` of each clip's first window, as the encoder
    computes them (its extractor, sample rate, truncation and repeat padding)."""
    rate, size = int(encoder.extractor.sampling_rate), encoder.extractor.nb_max_samples
    truncation = "fusion" if encoder.model.config.enable_fusion else "rand_trunc"
    out = []
    with progress_bar(len(clips), "clap features", unit="clip", enabled=progress) as bar:
        for start in range(0, len(clips), 32):
            windows = [a.to(rate, channels=1).waveform[0, :size].double().numpy() for a in clips[start:start + 32]]
            batch = encoder.extractor(windows, sampling_rate=rate, return_tensors="pt", truncation=truncation,
                                      padding="repeatpad")
            out.append(batch["input_features"].float())
            bar.update(len(windows))
    return torch.cat(out)


def build_clap_model(encoder, config: ClapPretrainConfig, vocab_size: int):
    """``ClapModel`` with the encoder's audio architecture and a small text tower."""
    from transformers import ClapConfig, ClapModel

    audio = encoder.model.config.to_dict()
    hidden = config.text_hidden
    if hidden % config.text_heads:
        raise ConfigError(f"pretrain.clap.text_hidden = {hidden} must be divisible by text_heads = {config.text_heads}")
    text = dict(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=config.text_layers,
                num_attention_heads=config.text_heads, intermediate_size=4 * hidden,
                max_position_embeddings=config.max_tokens + 2, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                projection_dim=audio["projection_dim"], projection_hidden_act="relu")
    clap_config = ClapConfig(text_config=text, audio_config=audio, projection_dim=audio["projection_dim"])
    return ClapModel(clap_config)


class ContrastiveObjective(nn.Module):
    """CLAP's symmetric InfoNCE over a batch of (clip, caption) pairs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        features, ids, mask = batch  # (B, C, F, M), (B, L), (B, L)
        length = int(mask.sum(1).max())
        out = self.model(input_ids=ids[:, :length], attention_mask=mask[:, :length].long(), input_features=features,
                         is_longer=torch.zeros(features.shape[0], 1, dtype=torch.bool), return_loss=True)
        hits = (out.logits_per_audio.argmax(1) == torch.arange(features.shape[0])).float().mean()
        return out.loss, {"loss": float(out.loss.detach()), "batch_acc": float(hits)}


class PairSampler(RowSampler):
    """Distinct clips per batch, each with one of its captions (drawn with the batch's generator)."""

    def __init__(self, features: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, per_clip: int,
                 batch_size: int, seed: int):
        super().__init__((features,), min(batch_size, features.shape[0]), seed)
        self.ids, self.mask, self.per_clip = ids, mask, per_clip

    def __call__(self, step: int, rank: int = 0):
        g = torch.Generator().manual_seed(hash((self.seed, step, rank, "pairs")) & 0x7FFF_FFFF_FFFF)
        clips = torch.randperm(self.tensors[0].shape[0], generator=g)[: self.batch_size]
        rows = clips * self.per_clip + torch.randint(self.per_clip, (len(clips),), generator=g)
        return self.tensors[0][clips], self.ids[rows], self.mask[rows]


def train_clap(registry, config: ClapPretrainConfig, clips: Sequence[Audio], captions: Sequence[Sequence[str]],
               work_dir: Path, *, seed: int = 0, progress: bool = True):
    """(encoder, ClapModel, tokenizer, history): CLAP trained on ``clips`` and their ``captions``
    (the same number of captions per clip)."""
    per_clip = {len(c) for c in captions}
    if len(clips) != len(captions) or len(per_clip) != 1 or len(clips) < 2:
        raise ConfigError("pretrain.clap needs at least 2 clips, each with the same number of captions")
    torch.manual_seed(seed)
    encoder = build_audio_encoder(registry, config)
    texts = [t for caps in captions for t in caps]
    tokenizer = train_text_tokenizer(texts, config.text_vocab_size)
    ids, mask = text_table(tokenizer, texts, config.max_tokens)
    features = audio_features(encoder, clips, progress=progress)
    model = build_clap_model(encoder, config, tokenizer.get_vocab_size())
    log.info("pretrain clap: %d clips, %d captions, %d parameters", len(clips), len(texts),
             sum(p.numel() for p in model.parameters()))
    sampler = PairSampler(features, ids, mask, per_clip.pop(), config.train.batch_size, seed)
    history = Trainer(ContrastiveObjective(model), sampler, config.train, work_dir, name="pretrain-clap",
                      seed=seed, progress=progress).run()
    model.eval().requires_grad_(False)
    return encoder, model, tokenizer, history


def save_clap(encoder, model, tokenizer, out_dir: Path) -> None:
    """Write the transformers CLAP directory (model, feature extractor, text tokenizer)."""
    from transformers import PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    encoder.extractor.save_pretrained(out_dir)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>", model_max_length=model.config.text_config.max_position_embeddings - 2,
                            ).save_pretrained(out_dir)


def pretrain_clap(registry, config: ClapPretrainConfig, clips: Sequence[Audio], captions: Sequence[Sequence[str]],
                  out_dir: Path, work_dir: Path, *, held_out: int = 0, seed: int = 0,
                  progress: bool = True) -> dict[str, Any]:
    """Train on all but the last ``held_out`` clips, write the directory, report the retrieval
    accuracy of the held-out clips among themselves (audio -> caption, top 1, vs chance)."""
    from c3llm.app.pretrain.clap_score import ClapScorer

    split = len(clips) - held_out
    encoder, model, tokenizer, history = train_clap(registry, config, clips[:split], captions[:split], work_dir,
                                                    seed=seed, progress=progress)
    save_clap(encoder, model, tokenizer, out_dir)
    report = {"clips": split, "steps": config.train.steps, "loss_first": _mean(history[:20]),
              "loss_last": _mean(history[-20:]), "parameters": sum(p.numel() for p in model.parameters())}
    if held_out >= 2:
        scorer = ClapScorer(out_dir)
        report["held_out"] = {"clips": held_out, **scorer.retrieval(clips[split:], [c[0] for c in captions[split:]])}
        log.info("pretrain clap: held-out retrieval %s", report["held_out"])
    return report
