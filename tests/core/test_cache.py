"""FeatureCache: atomic safetensors entries, index reconciliation, corruption, extractor keys."""

from __future__ import annotations

import json
import os
import time

import attrs
import pytest
import torch
from torch import nn

from c3llm.app.features import cache as cache_module
from c3llm.app.features.cache import FeatureCache, extractor_key, weights_fingerprint
from c3llm.core.config import field, in_range
from c3llm.core.errors import CheckpointError, InputError


@attrs.frozen(kw_only=True)
class TinyConfig:
    width: int = field(4, help="output width", validator=in_range(1, 64))


class Tiny(nn.Module):
    """A one-layer extractor: enough to have a config and weights."""

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(3, config.width)


def _temp_files(root):
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_put_get_round_trip_and_index(tmp_path):
    cache = FeatureCache(tmp_path, "codes-test-0")
    codes = torch.randint(0, 1000, (4, 37), dtype=torch.int16)
    feats = torch.randn(9, 5)
    cache.put("clip/with odd:chars", {"codes": codes})
    cache.put("b", {"features": feats})
    assert cache.has("clip/with odd:chars") and "b" in cache and not cache.has("c")
    assert len(cache) == 2 and cache.ids() == ["b", "clip/with odd:chars"]
    got = cache.get("clip/with odd:chars")
    assert got["codes"].dtype == torch.int16 and torch.equal(got["codes"], codes)
    assert torch.equal(cache.get("b")["features"], feats)
    assert cache.shapes("b") == {"features": (9, 5)}
    # the id never becomes a path outside the cache folder
    assert cache.path("clip/with odd:chars").parent.parent == cache.directory
    cache.flush()
    index = json.loads((cache.directory / "index.json").read_text())
    assert set(index["entries"]) == {"b", "clip/with odd:chars"}
    assert index["entries"]["clip/with odd:chars"]["shapes"] == {"codes": [4, 37]}
    assert index["entries"]["clip/with odd:chars"]["dtypes"] == {"codes": "int16"}
    assert _temp_files(tmp_path) == []
    # a second instance sees the same entries
    again = FeatureCache(tmp_path, "codes-test-0")
    assert again.ids() == cache.ids() and torch.equal(again.get("b")["features"], feats)


def test_ids_differing_only_in_case_do_not_collide(tmp_path):
    cache = FeatureCache(tmp_path, "k")
    cache.put("AbC", {"x": torch.zeros(1)})
    cache.put("abc", {"x": torch.ones(1)})
    assert cache.path("AbC").name.lower() != cache.path("abc").name.lower()
    assert cache.get("AbC")["x"].item() == 0 and cache.get("abc")["x"].item() == 1


def test_index_rebuilt_from_files_when_missing_or_stale(tmp_path):
    with FeatureCache(tmp_path, "k") as cache:
        for i in range(3):
            cache.put(f"id{i}", {"x": torch.full((i + 1,), float(i))})
    (tmp_path / "k" / "index.json").unlink()
    rebuilt = FeatureCache(tmp_path, "k")
    assert rebuilt.ids() == ["id0", "id1", "id2"] and rebuilt.shapes("id2") == {"x": (3,)}
    # entries written after the last flush (a killed run) are picked up on open
    writer = FeatureCache(tmp_path, "k")
    writer.put("late", {"x": torch.zeros(2)})  # no flush
    writer.path("id0").unlink()  # and a file removed behind the index's back
    reopened = FeatureCache(tmp_path, "k")
    assert reopened.ids() == ["id1", "id2", "late"]


def test_unreadable_index_is_rebuilt(tmp_path):
    with FeatureCache(tmp_path, "k") as cache:
        cache.put("a", {"x": torch.zeros(2)})
    (tmp_path / "k" / "index.json").write_text("{not json")
    assert FeatureCache(tmp_path, "k").ids() == ["a"]


def test_truncated_entry_is_detected(tmp_path):
    with FeatureCache(tmp_path, "k") as cache:
        cache.put("a", {"x": torch.randn(64)})
    path = cache.path("a")
    path.write_bytes(path.read_bytes()[:-40])
    # a cache opened later drops it from the index (size changed, header unreadable)
    assert not FeatureCache(tmp_path, "k").has("a")
    # the instance that still lists it raises a typed error that says what to do
    with pytest.raises(CheckpointError, match="truncated or corrupt.*prepare"):
        cache.get("a")


def test_altered_bytes_fail_the_checksum(tmp_path):
    with FeatureCache(tmp_path, "k") as cache:
        cache.put("a", {"x": torch.zeros(64)})
    path = cache.path("a")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # same size, valid header, damaged tensor bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        FeatureCache(tmp_path, "k").get("a")
    assert FeatureCache(tmp_path, "k").get("a", verify=False)["x"].shape == (64,)


def test_failed_write_leaves_old_entry_and_no_temp_file(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path, "k")
    cache.put("a", {"x": torch.zeros(3)})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(cache_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        cache.put("a", {"x": torch.ones(3)})
    monkeypatch.undo()
    assert torch.equal(cache.get("a")["x"], torch.zeros(3))
    assert _temp_files(tmp_path) == []


def test_stale_temp_files_of_killed_writers_are_removed(tmp_path):
    cache = FeatureCache(tmp_path, "k")
    cache.put("a", {"x": torch.zeros(3)})
    stale = cache.path("a").parent / ".a-deadbeef.safetensors.abc.tmp"
    fresh = cache.path("a").parent / ".b-deadbeef.safetensors.abc.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - 2 * cache_module.STALE_TEMP_SECONDS
    os.utime(stale, (old, old))
    assert FeatureCache(tmp_path, "k").ids() == ["a"]
    assert not stale.exists() and fresh.exists()  # a live writer's temp file is left alone


def test_discard_and_bad_input(tmp_path):
    cache = FeatureCache(tmp_path, "k")
    cache.put("a", {"x": torch.zeros(1)})
    cache.discard("a")
    assert not cache.has("a") and not cache.path("a").exists()
    with pytest.raises(CheckpointError, match="no cache entry for 'a'.*prepare"):
        cache.get("a")
    with pytest.raises(InputError, match="no tensors"):
        cache.put("b", {})
    with pytest.raises(InputError, match="not a tensor"):
        cache.put("b", {"x": [1, 2]})
    with pytest.raises(InputError, match="plain folder name"):
        FeatureCache(tmp_path, "../escape")


def test_extractor_key_follows_config_weights_and_recipe():
    torch.manual_seed(0)
    a = Tiny(TinyConfig(width=4))
    key = extractor_key("audio", a)
    assert key.startswith("audio-tiny-") and len(key.split("-")[-1]) == 16
    assert extractor_key("audio", a) == key  # stable
    assert extractor_key("video", a) != key  # kind is part of it
    assert extractor_key("audio", Tiny(TinyConfig(width=5))) != key  # config
    b = Tiny(TinyConfig(width=4))
    b.load_state_dict(a.state_dict())
    assert extractor_key("audio", b) == key  # same config, same weights
    with torch.no_grad():
        b.proj.weight[0, 0] += 1e-3  # "retrained"
    assert extractor_key("audio", b) != key and weights_fingerprint(b) != weights_fingerprint(a)
    assert extractor_key("audio", a, recipe={"sample_rate": 16000}) != key


def test_extractor_key_includes_registered_name_and_version():
    from c3llm.core.registry import ComponentSpec

    a = Tiny(TinyConfig())
    plain = extractor_key("audio", a)
    a.registry_spec = ComponentSpec(role="encoder", name="tiny-enc", component_cls=Tiny, config_cls=TinyConfig,
                                    plugin="p", distribution="d", version="1.0")
    named = extractor_key("audio", a)
    assert named != plain and named.startswith("audio-tiny-enc-")
    a.registry_spec = attrs.evolve(a.registry_spec, version="1.1")
    assert extractor_key("audio", a) != named


def test_for_component_writes_a_description(tmp_path):
    component = Tiny(TinyConfig(width=3))
    cache = FeatureCache.for_component(tmp_path, "audio", component, recipe={"rate": 8000})
    description = json.loads((cache.directory / "extractor.json").read_text())
    assert description["config"] == {"width": 3} and description["recipe"] == {"rate": 8000}
    assert description["weights"] == weights_fingerprint(component)
    assert cache.key == extractor_key("audio", component, recipe={"rate": 8000})
