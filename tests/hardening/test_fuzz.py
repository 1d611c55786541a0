"""Property-based fuzzing (hypothesis) of the config loader, the manifest readers and the text
tokenizer: whatever the bytes, the result is data or a typed, one-line C3LLMError — never a
raw exception — and user text never yields a control token."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from c3llm import sdk
from c3llm.app.run_config import parse_run_config
from c3llm.core.config import apply_overrides, load_file, parse_override
from c3llm.core.errors import C3LLMError
from c3llm.core.registry import get_registry

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.toml"

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=20))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=12)


def _one_line_error(exc: BaseException) -> None:
    assert isinstance(exc, C3LLMError), f"raw {type(exc).__name__}: {exc}"
    assert "\n" not in str(exc)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))),
       suffix=st.sampled_from([".toml", ".json"]))
def test_config_loader_on_any_bytes(raw, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"c{suffix}"
        path.write_bytes(raw)
        try:
            data = load_file(path)
        except Exception as exc:  # noqa: BLE001 - the property is about the class
            _one_line_error(exc)
            return
        assert isinstance(data, dict)


@FUZZ
@given(section=st.sampled_from(["run", "generate", "train", "data", "prompts", "backbone", "decoder"]),
       key=st.sampled_from(["name", "seed", "duration", "sampling", "text", "lm", "eval", "lora_r", "x"]),
       value=_values)
def test_run_config_on_any_value(section, key, value):
    """Refused with a one-line typed error, or accepted as a config that survives its own
    resolved form; never accepted with a key no section has, or with a NaN or infinity."""
    registry = get_registry()
    data = load_file(TINY)
    data.setdefault(section, {})
    data[section][key] = value
    try:
        config = parse_run_config(data, registry=registry)
    except Exception as exc:  # noqa: BLE001
        _one_line_error(exc)
        return
    assert key != "x", f"[{section}] accepted the unknown key 'x'"
    assert not _non_finite(value), f"{section}.{key} accepted the non-finite value {value!r}"
    resolved = config.to_mapping(registry)
    assert parse_run_config(resolved, registry=registry).to_mapping(registry) == resolved


def _non_finite(value) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


@FUZZ
@given(override=st.text(max_size=60))
def test_overrides_on_any_text(override):
    """Refused with a one-line typed error, or applied: the dotted key then holds the parsed
    value, and the input is left as it was."""
    base = {"run": {"name": "x"}}
    try:
        result = apply_overrides(base, [override])
    except Exception as exc:  # noqa: BLE001
        _one_line_error(exc)
        return
    assert base == {"run": {"name": "x"}}, "apply_overrides changed its input"
    parts, value = parse_override(override)
    node = result
    for part in parts:
        node = node[part]
    assert repr(node) == repr(value), f"{override!r} set {parts} to {node!r}, expected {value!r}"


@FUZZ
@given(body=st.binary(max_size=400), dataset=st.sampled_from(["audiocaps", "clotho", "vas", "synthetic"]))
def test_manifest_readers_on_any_bytes(body, dataset):
    files = {"audiocaps": ("train.csv", b"audiocap_id,youtube_id,start_time,caption\n"),
             "clotho": ("clotho_captions_development.csv",
                        b"file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"),
             "vas": ("vas_train.txt", b""), "synthetic": ("metadata.jsonl", b"")}
    name, header = files[dataset]
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / name).write_bytes(header + body)
        try:
            samples = list(get_registry().build("dataset", {"name": dataset, "root": folder}))
        except Exception as exc:  # noqa: BLE001
            _one_line_error(exc)
            return
        assert all(s.audio_path is None or Path(folder) in s.audio_path.parents for s in samples)


@pytest.fixture(scope="module")
def backbone():
    return sdk.Pipeline.from_plugins(decoder="encodec", backbone="gemma").model.backbone


_markers = st.sampled_from(["<Audio>", "</Audio>", "<Video>", "</Video>", "<eos>", "<bos>", "<pad>", "<unk>",
                            "<a_0>", "<a_3>", "<a_1023>", "<", ">", "/", " ", "\ud800", "\x00", "\n"])


@FUZZ
@given(parts=st.lists(st.one_of(_markers, st.text(max_size=8)), min_size=1, max_size=12))
def test_tokenizer_never_yields_a_control_token(backbone, parts):
    text = "".join(parts)
    try:
        ids = backbone.tokenize([text])[0]
    except Exception as exc:  # noqa: BLE001 - empty or invalid text
        _one_line_error(exc)
        return
    assert not set(ids) & backbone.special.control_ids(), text
