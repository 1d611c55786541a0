"""Freezing as the paper has it, through the real prepare and train stages of the recipe's
components at toy sizes (configs/demo_recipe.toml: a pretrained LM under LoRA, the pretrain
stage's CLAP as the audio encoder, its RGB/flow CNNs as the video encoder):

- the frozen parts (the LM's base weights, the CLAP, the video CNNs, the codec) are bit-identical
  after LM and NAR training, buffers included (a BatchNorm's running statistics move in a
  forward pass without any gradient), and after prepare and training they still equal the
  pretrain stage's files;
- only the LoRA factors, the new token rows, the projectors (LM stage) and the refiner (NAR
  stage) receive gradients, and each of them does.
"""

from __future__ import annotations

import pytest
import torch

from c3llm.app.pretrain.settings import PretrainSection
from c3llm.app.pretrain.stage import run_pretrain
from c3llm.app.run_config import parse_run_config
from c3llm.app.stages import RunContext, run_stages, stage_train
from c3llm.app.training import tasks
from c3llm.core.config import from_mapping
from c3llm.core.registry import get_registry
from c3llm.method.assembly import assemble, build_components
from c3llm.plugins.datasets.synthetic import WorldConfig, generate_world

STEPS = {"steps": 3, "batch_size": 4, "warmup_steps": 1, "log_every": 1, "tensorboard": False}
TOY_PRETRAIN = {
    "corpus": {"clips": 10, "seconds": 1.0, "video_clips": 3, "fps": 6.0, "frame_size": 32, "captions_per_clip": 2},
    "lm": {"backbone": {"name": "gemma", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32,
                        "tokenizer_vocab_size": 96}, "max_tokens": 24, "train": STEPS},
    "clap": {"text_hidden": 16, "text_heads": 2, "text_layers": 1, "text_vocab_size": 120, "train": STEPS},
    "video": {"encoder": {"name": "rgb-flow", "extractor": "resnet10-slim", "fps": 6.0, "frame_size": 32},
              "train": STEPS},
}


def recipe_config(root, foundation, world) -> dict:
    """demo_recipe.toml's components at toy sizes, loading the toy pretrained models."""
    optim = {"batch_size": 3, "lr": 5e-2, "warmup_steps": 0, "checkpoint_every": 100, "log_every": 1,
             "tensorboard": False}
    return {
        "run": {"name": "freeze", "out_dir": str(root / "runs"), "seed": 0},
        "data": {"train": {"name": "synthetic", "root": str(world), "split": "train"}},
        "decoder": {"name": "melvq", "codebook_size": 16, "num_codebooks": 2},
        "audio_encoder": {"name": "clap", "preset": "tiny", "pretrained": str(foundation / "clap"),
                          "num_local_frames": 4},
        "video_encoder": {"name": "rgb-flow", "extractor": "resnet10-slim", "fps": 6.0, "frame_size": 32,
                          "weights": str(foundation / "video" / "resnet10-slim-rgb.pth"),
                          "flow_weights": str(foundation / "video" / "resnet10-slim-flow.pth")},
        "backbone": {"name": "gemma", "pretrained": str(foundation / "lm"), "mode": "lora", "lora_r": 4,
                     "lora_alpha": 8.0, "lora_dropout": 0.0},
        "refiner": {"name": "nar", "dim": 16, "num_layers": 1, "num_heads": 2},
        "train": {"lm": {**optim, "steps": 4}, "nar": {**optim, "steps": 2},
                  "tasks": {"t2a": 1.0, "v2a": 1.0, "a2t": 1.0}},
    }


def adapted(name: str) -> bool:
    """A backbone parameter the paper trains: a LoRA factor or the new token rows."""
    return "lora_" in name or "trainable_tokens" in name


def frozen_state(model) -> dict[str, torch.Tensor]:
    """Every tensor that must not change: the backbone except its adapters, encoders, codec."""
    state = {f"backbone.{n}": t for n, t in model.backbone.state_dict().items() if not adapted(n)}
    for part in ("encoders", "decoder"):
        state.update({f"{part}.{n}": t for n, t in getattr(model, part).state_dict().items()})
    return {n: t.detach().clone() for n, t in state.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    registry = get_registry()
    foundation = root / "foundation"
    run_pretrain(from_mapping(PretrainSection, TOY_PRETRAIN, where="pretrain"), foundation, registry, progress=False)
    world = root / "world"
    generate_world(WorldConfig(num_train=6, num_test=0, num_test_novel=0, duration=1.0, max_events=2,
                               novel_combinations=()), world, progress=False)
    config = parse_run_config(recipe_config(root, foundation, world), registry=registry)
    run_stages(config, ["train-codec", "prepare"], registry=registry, progress=False)
    ctx = RunContext(config, registry, progress=False)
    pipe = ctx.initial_pipeline()
    model = pipe.model
    names = {id(p): n for n, p in model.named_parameters()}
    before_frozen = frozen_state(model)
    before_trained = {n: p.detach().clone() for n, p in model.named_parameters() if n not in before_frozen}
    got_grad: dict[str, set[str]] = {"lm": set(), "nar": set()}
    phase = {"now": "lm"}
    for p in model.parameters():  # on every parameter: a stage that unfroze one would show
        flag = p.requires_grad
        p.requires_grad_(True)
        p.register_post_accumulate_grad_hook(lambda p: got_grad[phase["now"]].add(names[id(p)]))
        p.requires_grad_(flag)
    original = tasks.freeze_for_stage

    def freeze(model, stage):  # the stage's own freezing, noting which stage is training
        phase["now"] = stage
        original(model, stage)

    ctx.initial_pipeline = lambda: pipe  # the stage trains this very model
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tasks, "freeze_for_stage", freeze)
        stage_train(ctx)
    # the parts as the pretrain stage wrote them, loaded anew from its files
    components = build_components(registry, ctx.component_specs(), base_dirs={k: None for k in config.components})
    fresh = frozen_state(assemble(components, prompts=config.prompts, projector_hidden=config.run.projector_hidden))
    return model, before_frozen, before_trained, got_grad, fresh


def test_frozen_parts_do_not_change_in_training(trained):
    model, before, _, _, _ = trained
    after = frozen_state(model)
    assert after.keys() == before.keys()
    assert any(n.startswith("encoders.audio") for n in before) and any(n.startswith("encoders.video") for n in before)
    assert any(".base_layer." in n for n in before)  # the LM's base weights under LoRA
    assert any("running_mean" in n for n in before)  # the CNNs' BatchNorm statistics
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert not changed, f"frozen tensors changed in training: {changed[:8]}"


def test_only_adapters_new_rows_projectors_and_refiner_get_gradients(trained):
    model, _, before, got_grad, _ = trained
    lm, nar = got_grad["lm"], got_grad["nar"]
    allowed_lm = [n for n in lm if n.startswith("projectors.") or (n.startswith("backbone.") and adapted(n))]
    assert sorted(lm) == sorted(allowed_lm), f"unexpected LM-stage gradients: {sorted(set(lm) - set(allowed_lm))[:8]}"
    assert all(n.startswith("refiner.") for n in nar), sorted(n for n in nar if not n.startswith("refiner."))[:8]
    assert any("lora_A" in n for n in lm) and any("lora_B" in n for n in lm)
    assert any("trainable_tokens" in n for n in lm)
    assert {n.split(".")[1] for n in lm if n.startswith("projectors.")} == {"audio", "video"}
    assert nar
    # and what got gradients moved
    params = dict(model.named_parameters())
    for group in ("lora_B", "trainable_tokens", "projectors.", "refiner."):
        assert any(group in n and not torch.equal(before[n], params[n]) for n in before), group


def test_frozen_parts_are_the_pretrain_stages_files_after_prepare_and_train(trained):
    """Also nothing before training (prepare runs the CLAP and CNNs over every clip) moved them:
    after both stages they equal the models loaded anew from the pretrain stage's files."""
    model, _, _, _, fresh = trained
    after = frozen_state(model)
    loaded = {n for n in after if not n.startswith("decoder.")}  # the codec is fitted by train-codec, not loaded
    assert loaded <= fresh.keys()
    pretrained_rows = model.backbone.special.acoustic_offset  # rows past it: the new tokens' (random) start

    def pretrained_part(name, tensor):
        return tensor[:pretrained_rows] if "token_adapter.base_layer" in name else tensor

    changed = [n for n in sorted(loaded) if not torch.equal(pretrained_part(n, after[n]), pretrained_part(n, fresh[n]))]
    assert not changed, f"frozen tensors differ from the pretrained files: {changed[:8]}"
