"""A saved pipeline records its frozen components (Gemma, EnCodec, CLAP, ResNet) by path, not
by copy; it still loads after the run folder moves with its models, and after the models
move alone when their new places are given (docs/paper_scale.md, section 6)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from test_configs import write_scaled_down

from c3llm import sdk
from c3llm.core.errors import ConfigError, UnavailableError


def write_models(models: Path) -> dict[str, Path]:
    from c3llm.plugins.decoders.encodec import EncodecCodec, EncodecCodecConfig
    from c3llm.plugins.encoders.clap import ClapEncoder, ClapEncoderConfig

    gemma = write_scaled_down("gemma", models / "gemma")
    codec = EncodecCodec(EncodecCodecConfig(preset="tiny"))
    codec.save_pretrained(models / "encodec")
    ClapEncoder(ClapEncoderConfig(init_seed=3)).model.save_pretrained(models / "clap")
    return {"gemma": gemma, "encodec": models / "encodec", "clap": models / "clap"}


def build(paths: dict[str, Path]) -> sdk.Pipeline:
    return sdk.Pipeline.from_plugins(
        decoder={"name": "encodec", "preset": "tiny", "pretrained": str(paths["encodec"])},
        backbone={"name": "gemma", "pretrained": str(paths["gemma"]), "mode": "lora", "lora_r": 4, "dtype": "float32"},
        refiner={"name": "nar", "dim": 32, "num_layers": 1, "num_heads": 2},
        audio_encoder={"name": "clap", "pretrained": str(paths["clap"]), "num_local_frames": 2},
    )


def tensor_names(path: Path) -> list[str]:
    with safe_open(str(path), "pt") as handle:
        return list(handle.keys())


def caption(pipe: sdk.Pipeline) -> str:
    return pipe.audio_to_text(sdk.Audio(0.1 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(0)),
                                        16000), max_tokens=3)


def test_a_run_folder_moved_with_or_without_its_models_still_loads(tmp_path):
    paths = write_models(tmp_path / "old" / "models")
    pipe = build(paths)
    saved = pipe.save_pretrained(tmp_path / "old" / "runs" / "paper" / "pipeline")
    record = json.loads((saved / "pipeline.json").read_text())
    for section, key, name in (("decoder", "pretrained", "encodec"), ("backbone", "pretrained", "gemma"),
                               ("audio_encoder", "pretrained", "clap")):
        entry = record["components"][section]
        assert entry["config"][key] == str(paths[name].resolve())  # absolute: tried first
        assert entry["locations"][key] == f"../../../models/{name}"  # relative to the pipeline folder
    # frozen components are not copied (they were: 89-108 MB each at the real dims)
    assert tensor_names(saved / "decoder" / "weights.safetensors") == []
    assert tensor_names(saved / "audio_encoder" / "weights.safetensors") == []
    expected = caption(sdk.Pipeline.from_pretrained(saved))

    # 1. the whole tree moves: found again relative to the pipeline folder
    shutil.move(tmp_path / "old", tmp_path / "new")
    moved_run = tmp_path / "new" / "runs" / "paper"
    assert caption(sdk.Pipeline.from_pretrained(moved_run)) == expected

    # 2. the run folder moves alone, the models stay: a clear error naming the key to pass ...
    shutil.move(moved_run, tmp_path / "elsewhere")
    with pytest.raises(UnavailableError, match=r"decoder.pretrained.*paths=\{'decoder.pretrained'"):
        sdk.Pipeline.from_pretrained(tmp_path / "elsewhere")
    # ... and passing the new places works, in Python and on the command line
    models = tmp_path / "new" / "models"
    new_paths = {"decoder.pretrained": models / "encodec", "backbone.pretrained": models / "gemma",
                 "audio_encoder.pretrained": str(models / "clap")}
    assert caption(sdk.Pipeline.from_pretrained(tmp_path / "elsewhere", paths=new_paths)) == expected
    from c3llm.app.cli import main

    argv = ["generate", "--checkpoint", str(tmp_path / "elsewhere"), "--text", "a dog barks", "--duration", "0.2",
            "--out", str(tmp_path / "dog.wav")] + [a for k, v in new_paths.items() for a in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dog.wav").is_file()
    with pytest.raises(ConfigError, match="not a key of this checkpoint"):
        sdk.Pipeline.from_pretrained(tmp_path / "elsewhere", paths={"decoder.weights": models})


def test_a_frozen_component_that_changed_is_saved_in_full_and_old_full_saves_still_load(tmp_path):
    """Recording by path holds only while the loaded weights are unchanged: a codec tuned after
    loading is saved in full; and checkpoints that copied frozen weights (before) still load."""
    paths = write_models(tmp_path / "models")
    pipe = build(paths)
    with torch.no_grad():
        next(pipe.model.decoder.parameters()).add_(0.5)
    saved = pipe.save_pretrained(tmp_path / "tuned")
    names = tensor_names(saved / "decoder" / "weights.safetensors")
    assert names  # the change is kept
    reloaded = sdk.Pipeline.from_pretrained(saved).model.decoder
    assert torch.equal(next(reloaded.parameters()), next(pipe.model.decoder.parameters()))


def test_a_new_place_that_is_a_hub_id_stays_a_hub_id(tmp_path):
    from c3llm.method.assembly import _relocate

    components = {"backbone": {"name": "gemma", "config": {"pretrained": "/gone/gemma-2b"},
                               "locations": {"pretrained": "../gone/gemma-2b"}}}
    _relocate(components, tmp_path, {"backbone.pretrained": "google/gemma-2b"})
    assert components["backbone"]["config"]["pretrained"] == "google/gemma-2b"


def test_a_runs_stages_load_its_pipelines_from_the_configs_current_model_paths(tmp_path):
    """Models moved and the config's paths changed: the run's saved pipelines (initial/,
    pipeline/) follow the config; and a path given through a link is recorded as the link."""
    from c3llm.app.run_config import parse_run_config
    from c3llm.app.stages import RunContext
    from c3llm.core.registry import get_registry

    paths = write_models(tmp_path / "old")
    (tmp_path / "stable").symlink_to(tmp_path / "old", target_is_directory=True)

    def context(models: Path) -> RunContext:
        data = {"run": {"name": "r", "out_dir": str(tmp_path / "runs")},
                "decoder": {"name": "encodec", "preset": "tiny", "pretrained": str(models / "encodec")},
                "backbone": {"name": "gemma", "pretrained": str(models / "gemma"), "mode": "lora", "lora_r": 4,
                             "dtype": "float32"},
                "refiner": {"name": "nar", "dim": 32, "num_layers": 1, "num_heads": 2},
                "audio_encoder": {"name": "clap", "pretrained": str(models / "clap"), "num_local_frames": 2}}
        return RunContext(parse_run_config(data, registry=get_registry()), get_registry())

    first = context(tmp_path / "stable").initial_pipeline()
    record = json.loads((tmp_path / "runs" / "r" / "initial" / "pipeline.json").read_text())
    assert record["components"]["backbone"]["config"]["pretrained"] == str(tmp_path / "stable" / "gemma")
    expected = caption(first)
    (tmp_path / "stable").unlink()
    shutil.move(paths["gemma"].parent, tmp_path / "new")
    assert caption(context(tmp_path / "new").initial_pipeline()) == expected


def test_moving_or_casting_frozen_weights_is_not_a_change(tmp_path):
    """A device move (here a dtype round trip: the same nn.Module._apply) replaces every
    buffer; the weights are still the source's, so the checkpoint still records the path.
    A training step after the move is still a change."""
    from c3llm.plugins.decoders.encodec import EncodecCodec, EncodecCodecConfig

    EncodecCodec(EncodecCodecConfig(preset="tiny")).save_pretrained(tmp_path / "encodec")
    codec = EncodecCodec(EncodecCodecConfig(preset="tiny", pretrained=str(tmp_path / "encodec")))
    codec.load_pretrained()
    codec.to(torch.float64).to(torch.float32)
    assert codec.weights_as_loaded() and codec.checkpoint_state_dict() == {}
    with torch.no_grad():
        next(codec.parameters()).mul_(2)
    assert not codec.weights_as_loaded() and codec.checkpoint_state_dict()
