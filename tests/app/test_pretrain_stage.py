"""The pretrain stage end to end at toy sizes: corpus and three models written under hashed
folders with stable links, reused when the config is unchanged, and typed errors for bad configs."""

from __future__ import annotations

import logging

import pytest

from c3llm.app.pretrain.cache import config_key
from c3llm.app.pretrain.settings import PretrainSection
from c3llm.app.pretrain.stage import pretrain_root, run_pretrain
from c3llm.app.run_config import parse_run_config
from c3llm.core.config import from_mapping
from c3llm.core.errors import ConfigError
from c3llm.core.registry import get_registry

STEPS = {"steps": 3, "batch_size": 4, "warmup_steps": 1, "log_every": 1, "tensorboard": False}
TOY = {
    "corpus": {"clips": 10, "seconds": 1.0, "video_clips": 3, "fps": 6.0, "frame_size": 32, "captions_per_clip": 2},
    "lm": {"backbone": {"name": "gemma", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32,
                        "tokenizer_vocab_size": 96}, "max_tokens": 24, "train": STEPS},
    "clap": {"text_hidden": 16, "text_heads": 2, "text_layers": 1, "text_vocab_size": 120, "train": STEPS},
    "video": {"encoder": {"name": "rgb-flow", "extractor": "resnet10-slim", "fps": 6.0, "frame_size": 32},
              "train": STEPS},
}


def test_pretrain_writes_links_and_reuses(tmp_path, caplog):
    section = from_mapping(PretrainSection, TOY, where="pretrain")
    registry = get_registry()
    with caplog.at_level(logging.INFO, logger="c3llm"):
        folders = run_pretrain(section, tmp_path, registry, progress=False)
    assert set(folders) == {"corpus", "lm", "clap", "video"}
    assert (tmp_path / "lm" / "config.json").is_file() and (tmp_path / "clap" / "preprocessor_config.json").is_file()
    assert (tmp_path / "video" / "resnet10-slim-rgb.pth").is_file()
    assert not any((tmp_path / ".work").iterdir())
    stamps = {k: (v / "pretrain.json").stat().st_mtime_ns for k, v in folders.items()}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="c3llm"):
        again = run_pretrain(section, tmp_path, registry, progress=False)
    assert again == folders
    assert {k: (v / "pretrain.json").stat().st_mtime_ns for k, v in again.items()} == stamps
    assert sum("reused" in r.getMessage() for r in caplog.records) == 4
    changed = from_mapping(PretrainSection, {**TOY, "models": ["lm"], "lm": {**TOY["lm"], "max_tokens": 20}},
                           where="pretrain")
    assert run_pretrain(changed, tmp_path, registry, progress=False)["lm"] != folders["lm"]
    assert (tmp_path / "lm").resolve() != folders["lm"]  # the link follows the newest


def test_config_key_ignores_order_and_sees_values():
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_root_expands_out_dir(tmp_path):
    section = PretrainSection()
    assert pretrain_root(section, tmp_path, tmp_path / "run") == tmp_path / "foundation"


@pytest.mark.parametrize("bad, message", [
    ({"models": ["lm", "vae"]}, "unknown model 'vae'"),
    ({"corpus": {"clips": 1}}, "pretrain.corpus: clips must be >= 2"),
    ({"lm": {"stepz": 3}}, "stepz"),
])
def test_bad_pretrain_configs_are_config_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(PretrainSection, bad, where="pretrain")


def test_the_run_config_knows_the_stage_and_section():
    data = {"run": {"stages": ["pretrain"]}, "decoder": {"name": "melvq"}, "backbone": {"name": "gemma"},
            "pretrain": {"models": ["clap"]}}
    config = parse_run_config(data, registry=get_registry())
    assert config.run.stages == ("pretrain",) and config.pretrain.models == ("clap",)
    with pytest.raises(ConfigError, match="stage"):
        parse_run_config({**data, "run": {"stages": ["pretrian"]}})


def test_a_bad_model_table_fails_at_the_stage_with_a_typed_error(tmp_path):
    section = from_mapping(PretrainSection, {**TOY, "models": ["lm"],
                                             "lm": {**TOY["lm"], "backbone": {"name": "gemma", "hidden_sise": 8}}},
                           where="pretrain")
    with pytest.raises(ConfigError, match="hidden_sise"):
        run_pretrain(section, tmp_path, get_registry(), progress=False)


def test_the_cli_runs_the_stage_and_reports_bad_keys_in_one_line(tmp_path):
    import tomli_w
    from click.testing import CliRunner

    from c3llm.app.cli import main

    config = {"run": {"out_dir": str(tmp_path), "name": "p"}, "decoder": {"name": "melvq"}, "backbone": {"name": "gemma"},
              "pretrain": {**TOY, "models": ["lm"]}}
    path = tmp_path / "p.toml"
    path.write_text(tomli_w.dumps(config))
    done = CliRunner().invoke(main, ["pretrain", str(path)])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "foundation" / "lm" / "model.safetensors").is_file()
    bad = CliRunner().invoke(main, ["pretrain", str(path), "--set", "pretrain.lm.max_tokenz=3"])
    assert bad.exit_code == 2 and "max_tokenz" in bad.output
