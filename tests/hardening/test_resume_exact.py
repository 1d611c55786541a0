"""Every random draw of training derives from run.seed: two fresh runs of the LM or NAR
stage are bit-identical whatever torch's global generator held before, and a run killed at
a random step then resumed (in a process whose global generator is anything) ends with the
same metrics and weights as an uninterrupted one."""

from __future__ import annotations

import json
import random
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

CAPTIONS = ["a high beep", "a low hum", "a chirp rising", "two knocks"]
STEPS = 8


def _trainer(stage_dir: Path, stage: str, noise: int) -> Trainer:
    torch.manual_seed(3)  # the initial weights: in a run they come from initial/, saved once
    pipe = sdk.Pipeline.from_plugins(
        decoder="encodec",
        backbone={"name": "gemma", "mode": "full", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                  "intermediate_size": 64, "tokenizer_corpus": CAPTIONS},
        refiner={"name": "nar", "dim": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.3},
    )
    model = pipe.model
    sr = model.decoder.sample_rate
    t = torch.arange(int(0.3 * sr)) / sr
    sounds = torch.stack([0.5 * torch.sin(2 * torch.pi * f * t) for f in (1500, 120, 600, 300)])
    with torch.no_grad():
        codes = model.decoder.encode(sounds[:, None])
    items = [{"id": str(i), "codes": codes[i], "captions": (c,)} for i, c in enumerate(CAPTIONS)]
    weights = TaskWeights(t2a=1.0, v2a=0.0, a2t=0.0)
    config = OptimConfig(steps=STEPS, lr=2e-3, warmup_steps=2, checkpoint_every=2, log_every=1)
    torch.manual_seed(noise)  # whatever the process did before: nothing may depend on it
    if stage == "nar":
        freeze_for_stage(model, "nar")
        return Trainer(NARObjective(model), NARSampler(items, weights, 4, seed=1), config, stage_dir,
                       name="nar", seed=7, progress=False)
    freeze_for_stage(model, "lm")
    return Trainer(LMObjective(model), TaskSampler(items, model.sequences, weights, 4, seed=1, cond_dropout=0.3),
                   config, stage_dir, name="lm", seed=7, progress=False)


def _metrics(stage_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stage", ["lm", "nar"])
def test_killed_at_a_random_step_then_resumed_is_bit_identical(tmp_path, stage):
    full = _trainer(tmp_path / "full", stage, noise=11)
    full.run()
    again = _trainer(tmp_path / "again", stage, noise=12345)
    again.run()
    assert _metrics(tmp_path / "again") == _metrics(tmp_path / "full"), "two fresh runs differ"

    kill_at = random.Random(f"{stage}-kill").randint(1, STEPS - 1)
    first = _trainer(tmp_path / "resumed", stage, noise=99)
    first.run(stop_after=kill_at)  # "kill -9" after kill_at steps: nothing written after the last checkpoint
    resumed = _trainer(tmp_path / "resumed", stage, noise=4242)  # a new process, another global state
    resumed.run()
    assert _metrics(tmp_path / "resumed") == _metrics(tmp_path / "full"), f"killed at step {kill_at}"
    for name, value in full.params.items():
        assert torch.equal(value, resumed.params[name]), name
