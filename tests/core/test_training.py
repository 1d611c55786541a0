"""Training: a tiny model learns to reproduce its clips' codes (eq. 1 and eq. 2), runs
resume exactly, and the same loop runs as two DDP processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
from c3llm.core.errors import InputError
from c3llm.method.generation import SamplingConfig, generate_acoustic

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTIONS = ["a high beep", "a low hum", "a chirp rising", "two knocks"]


def tiny_pipeline(seed: int = 0) -> sdk.Pipeline:
    torch.manual_seed(seed)
    return sdk.Pipeline.from_plugins(
        decoder="encodec",
        backbone={"name": "gemma", "mode": "full", "hidden_size": 64, "num_layers": 2, "num_heads": 2,
                  "intermediate_size": 128, "tokenizer_corpus": CAPTIONS},
        refiner={"name": "nar", "dim": 48, "num_layers": 2, "num_heads": 4, "dropout": 0.1},
    )


def clip_items(pipe: sdk.Pipeline) -> list[dict]:
    """Four distinct synthetic sounds, tokenised by the pipeline's codec."""
    sr = pipe.model.decoder.sample_rate
    t = torch.arange(int(0.4 * sr)) / sr
    sounds = [
        0.5 * torch.sin(2 * torch.pi * 1500 * t),
        0.5 * torch.sin(2 * torch.pi * 120 * t),
        0.5 * torch.sin(2 * torch.pi * (300 + 2000 * t) * t),
        0.5 * torch.randn(len(t)) * (torch.sin(2 * torch.pi * 5 * t) > 0),
    ]
    with torch.no_grad():
        codes = pipe.model.decoder.encode(torch.stack(sounds)[:, None])  # (4, Q, S)
    return [{"id": str(i), "codes": codes[i], "captions": (c,)} for i, c in enumerate(CAPTIONS)]


def test_tiny_model_reproduces_its_training_codes(tmp_path):
    pipe = tiny_pipeline()
    model = pipe.model
    items = clip_items(pipe)
    weights = TaskWeights(t2a=1.0, v2a=0.0, a2t=0.0)
    freeze_for_stage(model, "lm")
    lm = Trainer(LMObjective(model), TaskSampler(items, model.sequences, weights, 8),
                 OptimConfig(steps=250, lr=5e-3, warmup_steps=10, weight_decay=0.0, log_every=50,
                             checkpoint_every=1000), tmp_path / "lm", name="lm", progress=False)
    history = lm.run()
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]
    freeze_for_stage(model, "nar")
    nar = Trainer(NARObjective(model), NARSampler(items, weights, 8),
                  OptimConfig(steps=250, lr=3e-3, warmup_steps=10, weight_decay=0.0, checkpoint_every=1000),
                  tmp_path / "nar", name="nar", progress=False)
    nar_history = nar.run()
    assert nar_history[-1]["loss"] < 0.2 * nar_history[0]["loss"]

    model.eval()
    prompts = [model.sequences.text_to_audio(c) for c in CAPTIONS]
    frames = [it["codes"].shape[1] for it in items]
    coarse = generate_acoustic(model, prompts, num_frames=frames, sampling=SamplingConfig(temperature=0.0))
    for it, got in zip(items, coarse):
        assert got.tolist() == it["codes"][0].tolist()
    cond, cond_mask = model.condition(CAPTIONS, [None] * 4)
    code_mask = torch.ones(4, frames[0], dtype=torch.bool)
    with torch.no_grad():
        full = model.refiner.refine(cond, cond_mask, torch.stack([c[None] for c in coarse]), code_mask)
    target = torch.stack([it["codes"] for it in items])
    accuracy = (full[:, 1] == target[:, 1]).float().mean()
    assert accuracy > 0.9


def _run(stage_dir: Path, stop_after: int | None, *, nar: bool) -> tuple[list[float], dict]:
    pipe = tiny_pipeline(seed=3)
    model = pipe.model
    items = clip_items(pipe)
    weights = TaskWeights(t2a=1.0, v2a=0.0, a2t=0.0)
    config = OptimConfig(steps=8, lr=2e-3, warmup_steps=2, checkpoint_every=2, log_every=1)
    if nar:
        freeze_for_stage(model, "nar")
        trainer = Trainer(NARObjective(model), NARSampler(items, weights, 4, seed=1), config, stage_dir,
                          name="nar", progress=False)
    else:
        freeze_for_stage(model, "lm")
        trainer = Trainer(LMObjective(model), TaskSampler(items, model.sequences, weights, 4, seed=1,
                                                          cond_dropout=0.3),
                          config, stage_dir, name="lm", progress=False)
    history = trainer.run(stop_after=stop_after)
    return [h["loss"] for h in history], {n: p.detach().clone() for n, p in trainer.params.items()}


@pytest.mark.parametrize("nar", [False, True], ids=["lm", "nar-with-dropout"])
def test_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path, nar):
    full_losses, full_params = _run(tmp_path / "full", None, nar=nar)
    first, _ = _run(tmp_path / "resumed", 5, nar=nar)  # "killed" after step 5; last checkpoint: step 4
    assert len(first) == 5
    # a fresh process would rebuild the model; the checkpoint at step 4 is where it resumes
    rest, resumed_params = _run(tmp_path / "resumed", None, nar=nar)
    assert len(rest) == 4
    assert rest == pytest.approx(full_losses[4:], abs=0, rel=0)
    for name, value in full_params.items():
        assert torch.equal(value, resumed_params[name]), name
    records = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 9))
    # TensorBoard gets the same scalars; step 5, logged before the "kill", is purged and redone once
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "resumed" / "tensorboard"))
    events.Reload()
    scalars = events.Scalars(f"{'nar' if nar else 'lm'}/loss")
    assert [e.step for e in scalars] == list(range(1, 9))
    assert [e.value for e in scalars] == pytest.approx([r["loss"] for r in records], rel=1e-6)


def test_resume_refuses_a_checkpoint_of_other_parameters(tmp_path):
    _run(tmp_path / "run", None, nar=False)
    pipe = tiny_pipeline()
    freeze_for_stage(pipe.model, "nar")  # different trainable set
    from c3llm.core.errors import CheckpointError

    trainer = Trainer(NARObjective(pipe.model), lambda i, r: None, OptimConfig(steps=1), tmp_path / "run",
                      name="x", progress=False)
    with pytest.raises(CheckpointError, match="other trainable parameters"):
        trainer.run()


@pytest.mark.slow
def test_two_process_ddp_run(tmp_path):
    """torchrun with two CPU processes (gloo): both ranks end with identical weights."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
         str(FIXTURES / "ddp_train.py"), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    digests = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert digests[0]["world"] == digests[1]["world"] == 2
    assert digests[0]["checksum"] == digests[1]["checksum"]
    assert digests[0]["first_loss"] != digests[0]["last_loss"]
    assert (tmp_path / "lm" / "checkpoint" / "state.json").is_file()  # rank 0 wrote it


def test_a_weighted_task_without_prepared_codes_is_an_error_not_a_silent_skip(caplog):
    """Items without codes (a prepare cache made for another codec config) must not quietly
    turn the run into captioning-only training."""
    pipe = tiny_pipeline()
    feats = torch.zeros(3, 8)  # (N, D) audio features; the sampler does not look inside
    no_codes = [{"id": str(i), "captions": (c,), "audio": feats} for i, c in enumerate(CAPTIONS)]
    with pytest.raises(InputError, match="task t2a has weight 1.0 but no training item has codes"):
        TaskSampler(no_codes, pipe.model.sequences, TaskWeights(t2a=1.0, v2a=0.0, a2t=1.0), 4)
    with pytest.raises(InputError, match="no training item has codes"):
        NARSampler(no_codes, TaskWeights(t2a=1.0, v2a=0.0), 4)
    # a modality the dataset does not have (no video here) is skipped with a warning
    items = clip_items(pipe)
    with caplog.at_level("WARNING"):
        sampler = TaskSampler(items, pipe.model.sequences, TaskWeights(t2a=1.0, v2a=1.0, a2t=0.0), 4)
    assert "task v2a: no training item has video" in caplog.text
    assert {ex.task for ex in sampler(0)} == {"t2a"}
