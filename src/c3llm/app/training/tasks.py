"""Multi-task batches (T2A, V2A, VT2A, A2T for the LM; text/video-conditioned NAR) and
the two training objectives (paper eq. 1 and eq. 2).

A training item is a mapping with ``id``, ``codes`` ``(Q, S)``, optional ``audio``
``(N, D_audio)`` and ``video`` ``(N, D_video)`` encoder features, and ``captions``. Items of a
mix of datasets also carry ``source`` (the dataset's label), ``source_weight`` (its share
among the datasets that serve a task) and ``tasks`` (the tasks it may serve).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from c3llm.core.config import field, in_range
from c3llm.core.errors import InputError
from c3llm.method.losses import lm_token_losses
from c3llm.method.sequence import Example, collate

log = logging.getLogger(__name__)

LM_TASKS = ("t2a", "v2a", "vt2a", "a2t")
NEEDS = {"t2a": ("codes", "captions"), "v2a": ("codes", "video"), "vt2a": ("codes", "video", "captions"),
         "a2t": ("audio", "captions")}


@attrs.frozen(kw_only=True)
class TaskWeights:
    """Relative frequency of each task in a batch (0 disables it)."""

    t2a: float = field(1.0, validator=in_range(0.0))
    v2a: float = field(1.0, validator=in_range(0.0))
    vt2a: float = field(0.0, validator=in_range(0.0), help="video + text -> audio (beyond the paper)")
    a2t: float = field(1.0, validator=in_range(0.0))


def _has(item: Mapping[str, Any], key: str) -> bool:
    value = item.get(key)
    return value is not None and (len(value) > 0)


def task_pools(items: Sequence[Mapping[str, Any]], weights: TaskWeights, tasks: Sequence[str]) -> dict[str, list]:
    """The items each task can use. A weighted task left without items is skipped with a
    warning when the data or the model lacks its modality (no captions in VGGSound, no video
    encoder), but missing codec codes are an error: every training clip has audio, so no codes
    means the prepare cache was made for another codec config, and a silent skip would train
    captioning alone for the whole run."""
    pools = {t: [it for it in items if all(_has(it, k) for k in NEEDS[t]) and _serves(it, t)] for t in tasks}
    for task in tasks:
        if pools[task] or not getattr(weights, task):
            continue
        if not any(_serves(it, task) for it in items):
            log.warning("task %s: no training dataset lists it in its tasks; it is skipped", task)
            continue
        absent = [k for k in NEEDS[task] if not any(_has(it, k) for it in items)]
        if "codes" in absent:
            raise InputError(
                f"task {task} has weight {getattr(weights, task)} but no training item has codes: the prepare "
                f"stage did not cache them for this model's codec (a changed codec config or retrained codec "
                f"gets a new cache key). Run prepare again"
            )
        log.warning("task %s: no training item has %s; it is skipped (set [train.tasks] %s = 0 to silence this)",
                    task, " or ".join(absent) or "all of " + ", ".join(NEEDS[task]), task)
    return pools


def _serves(item: Mapping[str, Any], task: str) -> bool:
    """Whether ``item``'s dataset may serve ``task`` (NAR pairs: t2a / v2a)."""
    allowed = item.get("tasks")
    return allowed is None or task in allowed


class _Pool:
    """A task's items, drawn uniformly when they come from one dataset, else each dataset with
    probability proportional to its ``source_weight`` and uniformly within it."""

    def __init__(self, items: Sequence[Mapping[str, Any]]):
        self.items = list(items)
        self.probs = None
        sources = [it.get("source") for it in self.items]
        if len(set(sources)) > 1:
            counts = {s: sources.count(s) for s in set(sources)}
            self.probs = torch.tensor([float(it.get("source_weight", 1.0)) / counts[s]
                                       for it, s in zip(self.items, sources)], dtype=torch.float64)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def draw(self, g: torch.Generator) -> Mapping[str, Any]:
        if self.probs is None:  # one dataset: as the single-dataset sampler always drew
            return self.items[int(torch.randint(len(self.items), (1,), generator=g))]
        return self.items[int(torch.multinomial(self.probs, 1, generator=g))]


def _generator(seed: int, index: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + index * 7_919 + rank * 104_729) % (2**63))


class TaskSampler:
    """Draws a deterministic multi-task batch for ``(index, rank)``.

    :param cond_dropout: probability of replacing an audio-generation prompt by the
        unconditional one (trains classifier-free guidance).
    """

    def __init__(self, items: Sequence[Mapping[str, Any]], builder, weights: TaskWeights, batch_size: int,
                 *, seed: int = 0, cond_dropout: float = 0.0):
        self.builder, self.batch_size, self.seed, self.cond_dropout = builder, batch_size, seed, cond_dropout
        self.pools = {t: _Pool(pool) for t, pool in task_pools(items, weights, LM_TASKS).items()}
        w = [getattr(weights, t) if self.pools[t] else 0.0 for t in LM_TASKS]
        if sum(w) == 0:
            raise InputError("no training task has data: check that prepare produced codes/features and captions")
        self.weights = torch.tensor(w, dtype=torch.float64)

    def __call__(self, index: int, rank: int = 0) -> list[Example]:
        g = _generator(self.seed, index, rank)
        tasks = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=g).tolist()
        batch = []
        for t in tasks:
            task = LM_TASKS[t]
            item = self.pools[task].draw(g)
            captions = item.get("captions") or ()
            caption = captions[int(torch.randint(len(captions), (1,), generator=g))] if captions else None
            drop = float(torch.rand((), generator=g)) < self.cond_dropout
            codes = item["codes"][0] if "codes" in NEEDS[task] else None
            if task != "a2t" and drop:
                batch.append(self.builder.unconditional_audio(codes))
            elif task == "t2a":
                batch.append(self.builder.text_to_audio(caption, codes))
            elif task == "v2a":
                batch.append(self.builder.video_to_audio(item["video"], codes))
            elif task == "vt2a":
                batch.append(self.builder.video_to_audio(item["video"], codes, caption=caption))
            else:
                batch.append(self.builder.audio_to_text(item["audio"], caption))
        return batch


class LMObjective(nn.Module):
    """Eq. 1 over a mixed batch; logs the loss of each task present."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, examples: Sequence[Example]) -> tuple[torch.Tensor, dict[str, float]]:
        batch = collate(examples, self.model)
        losses, rows = lm_token_losses(self.model.backbone, batch)
        detached = losses.detach()
        logs = {"loss": float(detached.mean()) if detached.numel() else 0.0}
        names = sorted({ex.task for ex in examples})
        task_of_row = torch.tensor([names.index(ex.task) for ex in examples], device=rows.device)
        task_of_token = task_of_row[rows]  # (M,)
        for index, task in enumerate(names):
            sel = task_of_token == index
            if bool(sel.any()):
                logs[f"loss_{task}"] = float(detached[sel].mean())
        return losses.mean(), logs


class NARSampler:
    """Draws (condition, codes) pairs; the condition is the caption (T2A) or video (V2A)."""

    def __init__(self, items: Sequence[Mapping[str, Any]], weights: TaskWeights, batch_size: int, *, seed: int = 0):
        self.batch_size, self.seed = batch_size, seed
        self.pools = {t: _Pool(pool) for t, pool in task_pools(items, weights, ("t2a", "v2a")).items()}
        w = [weights.t2a if self.pools["t2a"] else 0.0, weights.v2a if self.pools["v2a"] else 0.0]
        if sum(w) == 0:
            raise InputError("the refiner has no (condition, codes) pairs to train on")
        self.weights = torch.tensor(w, dtype=torch.float64)

    def __call__(self, index: int, rank: int = 0) -> list[tuple[str | None, torch.Tensor | None, torch.Tensor]]:
        g = _generator(self.seed + 1, index, rank)
        out = []
        for t in torch.multinomial(self.weights, self.batch_size, replacement=True, generator=g).tolist():
            item = self.pools[("t2a", "v2a")[t]].draw(g)
            if t == 0:
                caps = item["captions"]
                out.append((caps[int(torch.randint(len(caps), (1,), generator=g))], None, item["codes"]))
            else:
                out.append((None, item["video"], item["codes"]))
        return out


class NARObjective(nn.Module):
    """Eq. 2: the refiner's loss given the (frozen) condition embeddings."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        captions = [c for c, _, _ in batch]
        video = [v for _, v, _ in batch]
        with torch.no_grad():
            cond, cond_mask = self.model.condition(captions, video)
        Q = self.model.refiner.num_codebooks
        width = max(codes.shape[1] for _, _, codes in batch)
        codes = torch.zeros(len(batch), Q, width, dtype=torch.long, device=cond.device)
        code_mask = torch.zeros(len(batch), width, dtype=torch.bool, device=cond.device)
        for i, (_, _, c) in enumerate(batch):
            if c.shape[0] < Q:
                raise InputError(f"items have {c.shape[0]} codebooks but the refiner needs {Q}")
            codes[i, :, : c.shape[1]] = c[:Q].long()
            code_mask[i, : c.shape[1]] = True
        loss = self.model.refiner.loss(cond.detach(), cond_mask, codes, code_mask)
        return loss, {"loss": float(loss.detach())}


def freeze_for_stage(model, stage: str) -> None:
    """Set which parameters train: ``lm`` = projectors + what the backbone marks trainable;
    ``nar`` = the refiner only. Codec and encoders stay frozen in both."""
    model.decoder.requires_grad_(False)
    model.encoders.requires_grad_(False)
    if stage == "lm":
        if model.refiner is not None:
            model.refiner.requires_grad_(False)
        model.projectors.requires_grad_(True)
        state = getattr(model, "_backbone_trainable", None)
        if state is not None:  # restore what the backbone set up after a NAR stage
            for p, flag in zip(model.backbone.parameters(), state):
                p.requires_grad_(flag)
    elif stage == "nar":
        if model.refiner is None:
            raise InputError("this pipeline has no refiner to train")
        if getattr(model, "_backbone_trainable", None) is None:
            model._backbone_trainable = [p.requires_grad for p in model.backbone.parameters()]
        model.backbone.requires_grad_(False)
        model.projectors.requires_grad_(False)
        model.refiner.requires_grad_(True)
    else:
        raise ValueError(f"unknown stage {stage!r}")
