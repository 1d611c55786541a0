"""Strict config loading: unknown keys, types, ranges, overrides, bound fields."""

from __future__ import annotations

import attrs
import pytest

from c3llm.core.config import (
    apply_overrides,
    bind,
    field,
    from_mapping,
    in_range,
    load_file,
    one_of,
    parse_override,
    to_mapping,
)
from c3llm.core.errors import ConfigError, IncompatibleComponentsError


@attrs.frozen(kw_only=True)
class Inner:
    rate: float = field(1.0, validator=in_range(0.0, low_open=True))


@attrs.frozen(kw_only=True)
class Cfg:
    lora_r: int = field(8, validator=in_range(1))
    mode: str = field("lora", validator=one_of("lora", "full"))
    targets: tuple[str, ...] = field(("q_proj", "v_proj"))
    path: str | None = field(None, path=True)
    dim: int | None = field(None, bind="backbone.hidden_size")
    inner: Inner = field(factory=Inner)


def test_defaults_and_values():
    cfg = from_mapping(Cfg, {"lora_r": 4, "targets": ["a"], "inner": {"rate": 2}})
    assert cfg.lora_r == 4 and cfg.targets == ("a",) and cfg.inner.rate == 2.0
    assert isinstance(cfg.inner.rate, float)
    assert to_mapping(cfg)["targets"] == ["a"]


def test_unknown_key_names_key_and_suggests():
    with pytest.raises(ConfigError, match=r"unknown key 'backbone.lora_rr'.*Did you mean 'lora_r'"):
        from_mapping(Cfg, {"lora_rr": 3}, where="backbone")


def test_nested_unknown_key_is_dotted():
    with pytest.raises(ConfigError, match=r"'backbone.inner.rat'.*'rate'"):
        from_mapping(Cfg, {"inner": {"rat": 1}}, where="backbone")


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"lora_r": "8"}, r"backbone.lora_r: expected an integer, got '8' \(str\)"),
        ({"lora_r": True}, r"backbone.lora_r: expected an integer"),
        ({"lora_r": 0}, r"lora_r must be >= 1, got 0"),
        ({"mode": "fulll"}, r"mode must be one of 'lora', 'full', got 'fulll'. Did you mean 'full'"),
        ({"targets": "q_proj"}, r"backbone.targets: expected a list"),
        ({"targets": [1]}, r"backbone.targets\[0\]: expected a string"),
        ({"inner": {"rate": -1}}, r"rate must be > 0.0, got -1.0"),
        ({"inner": 3}, r"backbone.inner: expected a table"),
    ],
)
def test_wrong_types_and_ranges_name_key_and_value(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        from_mapping(Cfg, data, where="backbone")


def test_relative_paths_resolve_against_base_dir(tmp_path):
    cfg = from_mapping(Cfg, {"path": "weights/model"}, base_dir=tmp_path)
    assert cfg.path == str(tmp_path / "weights/model")
    cfg = from_mapping(Cfg, {"path": "/abs/model"}, base_dir=tmp_path)
    assert cfg.path == "/abs/model"


def test_parse_override_values():
    assert parse_override("backbone.lora_r=32") == (["backbone", "lora_r"], 32)
    assert parse_override("a.b=0.5")[1] == 0.5
    assert parse_override("a.b=true")[1] is True
    assert parse_override("a.b=[1, 2]")[1] == [1, 2]
    assert parse_override("a.name=gemma")[1] == "gemma"
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("nonsense")
    with pytest.raises(ConfigError, match="not a dotted key"):
        parse_override("a..b=1")


def test_apply_overrides_does_not_mutate():
    data = {"backbone": {"name": "gemma", "lora_r": 8}}
    out = apply_overrides(data, ["backbone.lora_r=32", "run.seed=3"])
    assert out["backbone"]["lora_r"] == 32 and out["run"]["seed"] == 3
    assert data["backbone"]["lora_r"] == 8
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides(data, ["backbone.name.x=1"])


def test_bind_fills_and_refuses_disagreement():
    lookup = {"backbone.hidden_size": 64}.get
    cfg = bind(Cfg(), lambda k: lookup(k, attrs.NOTHING), where="refiner")
    assert cfg.dim == 64
    with pytest.raises(IncompatibleComponentsError, match=r"refiner.dim = 32 but backbone.hidden_size = 64"):
        bind(Cfg(dim=32), lambda k: lookup(k, attrs.NOTHING), where="refiner")


def test_load_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nname = 1")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_file(bad)


@attrs.frozen(kw_only=True)
class Sized:
    size: tuple[int, int] = field((64, 64))


def test_fixed_length_tuple_fields():
    assert from_mapping(Sized, {"size": [32, 16]}).size == (32, 16)
    with pytest.raises(ConfigError, match=r"size: expected 2 items, got 3"):
        from_mapping(Sized, {"size": [1, 2, 3]})
    with pytest.raises(ConfigError, match=r"size\[1\]: expected an integer"):
        from_mapping(Sized, {"size": [1, "x"]})


def test_renamed_keys_and_stage_still_load_with_a_deprecation_warning():
    """One release of backward compatibility for the names that meant two things."""
    from c3llm.app.run_config import parse_run_config
    from c3llm.core.registry import get_registry

    data = {
        "run": {"stages": ["prepare", "generate"]},
        "decoder": {"name": "melvq"}, "backbone": {"name": "gemma"},
        "video_encoder": {"name": "rgb-flow", "backbone": "handcrafted"},
        "train": {"cond_dropout": 0.3},
    }
    with pytest.warns(DeprecationWarning) as caught:
        config = parse_run_config(data, registry=get_registry())
    messages = " ".join(str(w.message) for w in caught)
    assert "'train.cond_dropout'" in messages and "'train.lm_cond_dropout'" in messages
    assert "'generate' is now called 'predict'" in messages
    assert config.train.lm_cond_dropout == 0.3
    assert config.run.stages == ("prepare", "predict")
    encoder = get_registry().make_config("encoder", config.components["video_encoder"], where="video_encoder")[1]
    assert encoder.extractor == "handcrafted"


def test_old_and_new_name_together_is_an_error():
    from c3llm.app.run_config import TrainSection

    with pytest.raises(ConfigError, match="old name of 'train.lm_cond_dropout'; give only one"):
        from_mapping(TrainSection, {"cond_dropout": 0.1, "lm_cond_dropout": 0.2}, where="train")
