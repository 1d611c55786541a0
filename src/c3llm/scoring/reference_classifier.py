"""The synthetic world's reference classifier: a small log-mel CNN trained on labelled clips.

It stands in for PANNs/VGGish where no pretrained weights exist (the embedded default). Its
scores are always named with the ``_synth`` suffix (``fd_synth``, ``kl_synth``, ``isc_synth``,
``mkl_synth``) so they are never set beside the paper's numbers.

:func:`train_reference_classifier` writes ``model.safetensors``, ``labels.json``,
``config.json`` and ``report.json`` (held-out accuracy) into a directory that
:meth:`ReferenceClassifier.from_directory` (and the metric configs' ``embedder_path``) reads.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from c3llm.core.config import field, from_mapping, in_range, to_mapping
from c3llm.core.errors import CheckpointError, InputError, UnavailableError
from c3llm.core.media import Audio
from c3llm.scoring.embedders import LogMel, mono_batch, run_in_batches

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
LABELS_FILE = "labels.json"
CONFIG_FILE = "config.json"
REPORT_FILE = "report.json"


@attrs.frozen(kw_only=True)
class ReferenceClassifierConfig:
    sample_rate: int = field(16000, validator=in_range(1000), help="rate the classifier listens at (Hz)")
    n_fft: int = field(512, validator=in_range(16), help="STFT size")
    hop_length: int = field(160, validator=in_range(1), help="STFT hop (samples)")
    n_mels: int = field(40, validator=in_range(4), help="mel bands")
    channels: tuple[int, ...] = field((16, 32, 64), help="conv widths, one pooled block each")
    embedding_dim: int = field(64, validator=in_range(2), help="width of the embedding used by fd_synth")
    num_classes: int = field(2, validator=in_range(2), help="set by training from the labels")


@attrs.frozen(kw_only=True)
class ReferenceTrainingConfig:
    model: ReferenceClassifierConfig = field(factory=ReferenceClassifierConfig, help="network shape")
    epochs: int = field(40, validator=in_range(1), help="passes over the training clips")
    batch_size: int = field(16, validator=in_range(1), help="clips per step")
    learning_rate: float = field(3e-3, validator=in_range(0.0, low_open=True), help="AdamW learning rate")
    weight_decay: float = field(1e-4, validator=in_range(0.0), help="AdamW weight decay")
    heldout_fraction: float = field(0.2, validator=in_range(0.0, 0.9), help="per-class share held out for the report")
    max_shift_seconds: float = field(0.1, validator=in_range(0.0), help="random circular time shift (augmentation)")
    seed: int = field(0, help="split and initialisation seed")


class ReferenceClassifierNet(nn.Module):
    """Log-mel -> [conv-BN-ReLU-maxpool] x len(channels) -> mean+max pool -> embedding -> logits."""

    def __init__(self, config: ReferenceClassifierConfig):
        super().__init__()
        c = config
        self.config = c
        self.frontend = LogMel(sample_rate=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length,
                               n_mels=c.n_mels, fmin=0.0, fmax=c.sample_rate / 2, kind="db")
        self.input_norm = nn.BatchNorm1d(c.n_mels)
        blocks, cin = [], 1
        for width in c.channels:
            blocks += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.MaxPool2d(2, ceil_mode=True)]
            cin = width
        self.blocks = nn.Sequential(*blocks)
        self.embedding = nn.Linear(cin, c.embedding_dim)
        self.head = nn.Linear(c.embedding_dim, c.num_classes)

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, frames, n_mels)`` of ``(B, T)`` waveforms (fixed, not trained)."""
        return self.frontend(wav)

    def forward_features(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mel (B, frames, n_mels)`` -> (embedding ``(B, E)``, logits ``(B, C)``)."""
        x = self.input_norm(mel.transpose(1, 2)).unsqueeze(1)  # (B, 1, n_mels, frames)
        x = self.blocks(x)  # (B, C, m, f)
        x = x.flatten(2)
        x = x.mean(-1) + x.amax(-1)  # (B, C)
        emb = F.relu(self.embedding(x))
        return emb, self.head(emb)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_features(self.features(wav))


class ReferenceClassifier:
    """A trained :class:`ReferenceClassifierNet` with its labels; an ``AudioEmbedder`` and an
    ``AudioClassifier`` whose scores carry the ``synth`` suffix."""

    score_suffix = "synth"

    def __init__(self, net: ReferenceClassifierNet, labels: Sequence[str], *, batch_size: int = 32):
        if len(labels) != net.config.num_classes:
            raise InputError(f"{len(labels)} labels for a {net.config.num_classes}-class network")
        self.net = net.eval()
        self.labels = tuple(labels)
        self.batch_size = batch_size

    def _run(self, audios: Sequence[Audio]) -> tuple[np.ndarray, np.ndarray]:
        self.net.eval()
        return run_in_batches(self.net, audios, self.net.config.sample_rate, self.batch_size)

    def embed(self, audios: Sequence[Audio]) -> np.ndarray:
        return self._run(audios)[0]

    def logits(self, audios: Sequence[Audio]) -> np.ndarray:
        return self._run(audios)[1]

    def predict(self, audios: Sequence[Audio]) -> list[str]:
        """The most likely label of each clip."""
        return [self.labels[i] for i in self.logits(audios).argmax(1)]

    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.net.state_dict().items()}, str(directory / WEIGHTS_FILE))
        (directory / LABELS_FILE).write_text(json.dumps(list(self.labels), indent=1))
        (directory / CONFIG_FILE).write_text(json.dumps(to_mapping(self.net.config), indent=1))
        return directory

    @classmethod
    def from_directory(cls, directory: str | Path) -> ReferenceClassifier:
        from safetensors.torch import load_file

        from c3llm.core.roles.base import load_strict

        directory = Path(directory)
        missing = [n for n in (WEIGHTS_FILE, LABELS_FILE, CONFIG_FILE) if not (directory / n).is_file()]
        if missing:
            raise UnavailableError(
                f"no reference classifier in {directory} (missing {', '.join(missing)}); train one with "
                "c3llm.scoring.reference_classifier.train_reference_classifier"
            )
        config = from_mapping(ReferenceClassifierConfig, json.loads((directory / CONFIG_FILE).read_text()),
                              where=str(directory / CONFIG_FILE))
        labels = json.loads((directory / LABELS_FILE).read_text())
        net = ReferenceClassifierNet(config)
        try:
            load_strict(net, load_file(str(directory / WEIGHTS_FILE)), owner="ReferenceClassifierNet")
        except CheckpointError as exc:
            raise CheckpointError(f"{directory}: {exc}") from exc
        return cls(net, labels)


def stratified_split(labels: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, held-out): ``round(fraction * n)`` of each class held out, at least one
    when ``fraction > 0`` and the class has two or more clips."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    rng = random.Random(seed)
    train, heldout = [], []
    for label in sorted(by_class):
        idx = by_class[label][:]
        rng.shuffle(idx)
        k = min(len(idx) - 1, max(1 if fraction > 0 else 0, round(fraction * len(idx))))
        heldout += idx[:k]
        train += idx[k:]
    return sorted(train), sorted(heldout)


def train_reference_classifier(
    audios: Sequence[Audio], labels: Sequence[str], config: ReferenceTrainingConfig,
    out_dir: str | Path | None,
) -> tuple[ReferenceClassifier, dict[str, Any]]:
    """Train the reference classifier on labelled clips; save it to ``out_dir`` (if given).

    :return: the classifier and a report: held-out and train accuracy, sizes, labels, loss.
    """
    if len(audios) != len(labels):
        raise InputError(f"{len(audios)} clips but {len(labels)} labels")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise InputError(f"the reference classifier needs at least two classes, got {classes}")
    torch.manual_seed(config.seed)
    model_config = attrs.evolve(config.model, num_classes=len(classes))
    net = ReferenceClassifierNet(model_config)
    wav = mono_batch(audios, model_config.sample_rate)  # (N, T)
    with torch.no_grad():
        mel = net.features(wav)  # (N, frames, n_mels), computed once
    y = torch.tensor([classes.index(label) for label in labels])
    train_idx, heldout_idx = stratified_split(labels, config.heldout_fraction, config.seed)
    max_shift = int(config.max_shift_seconds * model_config.sample_rate / model_config.hop_length)

    params = [p for n, p in net.named_parameters() if not n.startswith("frontend.")]
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.learning_rate, total_steps=config.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(config.seed)
    train_t = torch.tensor(train_idx)
    loss_value = float("nan")
    for epoch in range(config.epochs):
        net.train()
        order = train_t[torch.randperm(len(train_t), generator=gen)]
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            x = mel[batch]
            if max_shift > 0:
                x = torch.roll(x, int(torch.randint(-max_shift, max_shift + 1, (1,), generator=gen)), dims=1)
            if len(batch) == 1:  # BatchNorm needs two samples in training mode
                x = torch.cat([x, x])
                batch = torch.cat([batch, batch])
            _, logits = net.forward_features(x)
            loss = F.cross_entropy(logits, y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(batch)
        loss_value = total / len(order)
        log.debug("reference classifier epoch %d loss %.4f", epoch, loss_value)

    net.eval()

    def accuracy(idx: list[int]) -> float | None:
        if not idx:
            return None
        with torch.no_grad():
            _, logits = net.forward_features(mel[idx])
        return float((logits.argmax(1) == y[idx]).float().mean())

    report = {
        "labels": classes,
        "num_train": len(train_idx),
        "num_heldout": len(heldout_idx),
        "train_accuracy": accuracy(train_idx),
        "heldout_accuracy": accuracy(heldout_idx),
        "final_train_loss": loss_value,
        "epochs": config.epochs,
    }
    classifier = ReferenceClassifier(net, classes)
    if out_dir is not None:
        classifier.save(out_dir)
        (Path(out_dir) / REPORT_FILE).write_text(json.dumps(report, indent=1))
    log.info("reference classifier: held-out accuracy %s on %d clips", report["heldout_accuracy"], len(heldout_idx))
    return classifier, report
