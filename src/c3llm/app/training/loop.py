"""A small, exact-resume training loop shared by the LM and NAR stages.

Design choices that make resume exact on CPU:

- the data a step sees is a pure function of ``(seed, step, rank)`` (the sampler draws with
  its own generator), so the data position is just the step number;
- the checkpoint holds the trained tensors, the optimizer state and the torch RNG state
  (dropout), written atomically every ``checkpoint_every`` steps;
- a fresh stage seeds torch's global generator (dropout) from ``(seed, stage name, rank)``,
  so every random draw derives from ``run.seed`` and two runs of the same config, or a
  killed and resumed one, give bit-identical metrics on CPU (LM and NAR stages alike).

Under ``torchrun`` the objective is wrapped in ``DistributedDataParallel`` (gloo on CPU,
NCCL on GPU); each rank draws its own batch and rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from c3llm.core.checkpoint import (
    atomic_directory,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)
from c3llm.core.config import field, in_range, one_of
from c3llm.core.errors import CheckpointError

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class OptimConfig:
    """Optimisation of one stage: AdamW, linear warm-up then cosine decay."""

    steps: int = field(1000, validator=in_range(0), help="optimizer steps (0 skips the stage)")
    batch_size: int = field(16, validator=in_range(1), help="examples per step per process")
    grad_accum: int = field(1, validator=in_range(1), help="micro-batches per optimizer step")
    lr: float = field(1e-3, validator=in_range(0.0, low_open=True))
    weight_decay: float = field(0.01, validator=in_range(0.0))
    warmup_steps: int = field(50, validator=in_range(0))
    min_lr_ratio: float = field(0.1, validator=in_range(0.0, 1.0), help="final lr / peak lr")
    max_grad_norm: float = field(1.0, validator=in_range(0.0), help="0 disables clipping")
    checkpoint_every: int = field(200, validator=in_range(1))
    log_every: int = field(20, validator=in_range(1))
    precision: str = field("auto", validator=one_of("auto", "fp32", "bf16", "fp16"),
                           help="autocast dtype; auto = bf16 on CUDA if supported, else fp32")
    tensorboard: bool = field(True, help="also write the logged scalars to <stage>/tensorboard/ when the "
                                         "tensorboard package is installed (pip install 'c3llm[tensorboard]')")


def lr_factor(step: int, config: OptimConfig) -> float:
    """Warm-up then cosine from 1 down to ``min_lr_ratio``."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def distributed_context() -> tuple[int, int]:
    """(rank, world size), initialising the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size()


def _autocast(device: torch.device, precision: str):
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False), None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return torch.autocast(device.type, dtype=dtype), scaler


class Trainer:
    """Runs ``objective(batch) -> (loss, logs)`` over ``sample(step, rank) -> batch``.

    :param objective: an ``nn.Module`` whose forward returns ``(loss, {name: float})``.
    :param out_dir: stage folder: ``checkpoint/`` (latest), ``metrics.jsonl``.
    """

    def __init__(self, objective: nn.Module, sample: Callable[[int, int], Any], config: OptimConfig,
                 out_dir: Path, *, name: str, seed: int = 0, progress: bool = True):
        self.objective, self.sample, self.config = objective, sample, config
        self.out_dir, self.name, self.seed, self.progress = Path(out_dir), name, seed, progress
        self.rank, self.world = distributed_context()
        self.params = {n: p for n, p in objective.named_parameters() if p.requires_grad}
        if not self.params:
            raise CheckpointError(f"{name}: nothing to train (no parameter requires grad)")
        decay = [p for n, p in self.params.items() if p.dim() >= 2]
        no_decay = [p for n, p in self.params.items() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr,
        )
        self.step = 0
        self.history: list[dict[str, float]] = []

    # -- checkpoints ----------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoint"

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        with atomic_directory(self.checkpoint_dir) as tmp:
            save_tensors(tmp / "trained.safetensors", {n: p.detach() for n, p in self.params.items()})
            opt = self.optimizer.state_dict()
            tensors, scalars = {}, {}
            for idx, state in opt["state"].items():
                for key, value in state.items():
                    if torch.is_tensor(value):
                        tensors[f"{idx}.{key}"] = value
                    else:
                        scalars[f"{idx}.{key}"] = value
            tensors["rng.torch"] = torch.get_rng_state()
            save_tensors(tmp / "optimizer.safetensors", tensors)
            write_json(tmp / "state.json", {
                "stage": self.name, "step": self.step, "seed": self.seed, "world": self.world,
                "param_groups": opt["param_groups"], "scalars": scalars,
                "params": {n: list(p.shape) for n, p in self.params.items()},
            })

    def load_checkpoint(self) -> bool:
        """Resume from ``checkpoint/`` if present; refuse a checkpoint of another shape."""
        if not (self.checkpoint_dir / "state.json").is_file():
            return False
        state = read_json(self.checkpoint_dir / "state.json")
        shapes = {n: list(p.shape) for n, p in self.params.items()}
        if state.get("params") != shapes:
            raise CheckpointError(
                f"{self.checkpoint_dir} was written for other trainable parameters "
                f"(config changed?); delete it or use a new run name"
            )
        trained = load_tensors(self.checkpoint_dir / "trained.safetensors", expected=self.params)
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(trained[n])
        tensors = load_tensors(self.checkpoint_dir / "optimizer.safetensors")
        opt_state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("rng."):
                continue
            idx, name = key.split(".", 1)
            opt_state.setdefault(int(idx), {})[name] = value
        for key, value in state["scalars"].items():
            idx, name = key.split(".", 1)
            opt_state.setdefault(int(idx), {})[name] = value
        self.optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
        self.step = int(state["step"])
        _truncate_metrics(self.out_dir / "metrics.jsonl", self.step)
        log.info("%s: resumed at step %d from %s", self.name, self.step, self.checkpoint_dir)
        return True

    # -- the loop -------------------------------------------------------------------------

    def run(self, *, stop_after: int | None = None) -> list[dict[str, float]]:
        """Train to ``config.steps``. ``stop_after`` stops after that many more steps as if
        the process were killed there (no final checkpoint; used by tests). Returns the
        history of this call."""
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not self.load_checkpoint():
            torch.manual_seed(stage_seed(self.seed, self.name, self.rank))  # dropout draws from run.seed
        model = self.objective
        device = next(iter(self.params.values())).device
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(self.objective, find_unused_parameters=True)
        autocast, scaler = _autocast(device, cfg.precision)
        end = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        bar = _progress(self.progress and self.rank == 0, self.step, cfg.steps, self.name)
        metrics_file = self.out_dir / "metrics.jsonl"
        board = TensorBoard.open(self.out_dir / "tensorboard", self.step) if cfg.tensorboard and self.rank == 0 else None
        self.objective.train()
        started = time.perf_counter()
        while self.step < end:
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(self.step, cfg)
            self.optimizer.zero_grad(set_to_none=True)
            totals: dict[str, float] = {}
            for micro in range(cfg.grad_accum):
                batch = self.sample(self.step * cfg.grad_accum + micro, self.rank)
                with autocast:
                    loss, logs = model(batch)
                loss = loss / cfg.grad_accum
                (scaler.scale(loss) if scaler else loss).backward()
                for k, v in logs.items():
                    totals[k] = totals.get(k, 0.0) + float(v) / cfg.grad_accum
            if scaler:
                scaler.unscale_(self.optimizer)
            if cfg.max_grad_norm:
                totals["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(list(self.params.values()), cfg.max_grad_norm))
            if scaler:
                scaler.step(self.optimizer)
                scaler.update()
            else:
                self.optimizer.step()
            self.step += 1
            record = {"step": self.step, "lr": self.optimizer.param_groups[0]["lr"], **totals}
            self.history.append(record)
            if self.rank == 0:
                if self.step % cfg.log_every == 0 or self.step == end:
                    with metrics_file.open("a") as fh:
                        fh.write(json.dumps(record) + "\n")
                    if board is not None:
                        board.write(self.name, record)
                    log.info("%s step %d/%d %s", self.name, self.step, cfg.steps,
                             " ".join(f"{k}={v:.4f}" for k, v in totals.items()))
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save_checkpoint()
            bar.update(1)
        bar.close()
        if board is not None:
            board.close()
        if self.rank == 0 and self.history:
            log.info("%s: %d steps in %.1f s", self.name, len(self.history), time.perf_counter() - started)
        return self.history


def stage_seed(seed: int, name: str, rank: int) -> int:
    """The global torch seed of a fresh stage: a function of the run's seed, the stage and the rank."""
    digest = hashlib.blake2b(f"{seed}|{name}|{rank}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (2**63)


class TensorBoard:
    """The logged scalars as TensorBoard events (``torch.utils.tensorboard``), beside metrics.jsonl."""

    def __init__(self, writer: Any):
        self.writer = writer

    @classmethod
    def open(cls, directory: Path, step: int) -> TensorBoard | None:
        """A writer for ``directory``, or None when the tensorboard package is not installed.
        Events after ``step`` (left by a run killed after its last checkpoint) are purged,
        as metrics.jsonl is truncated, so a resumed run's curves have no doubled steps."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.debug("tensorboard is not installed: scalars go to metrics.jsonl only")
            return None
        return cls(SummaryWriter(str(directory), purge_step=step + 1 if step else None))

    def write(self, stage: str, record: dict[str, float]) -> None:
        for key, value in record.items():
            if key != "step":
                self.writer.add_scalar(f"{stage}/{key}", value, record["step"])

    def close(self) -> None:
        self.writer.close()


class _NoBar:
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


def _progress(enabled: bool, start: int, total: int, name: str):
    if not enabled:
        return _NoBar()
    from c3llm.core.progress import progress_bar

    return progress_bar(total, name, unit="step", initial=start)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint a run resumes from (they will be redone)."""
    if path.is_file():
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= step]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, path)


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The JSONL metrics a stage wrote."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
