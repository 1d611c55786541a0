"""The ``synthetic`` dataset plugin, its configs, and the public readers on a generated world."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from c3llm.core.config import from_mapping
from c3llm.core.errors import ConfigError
from c3llm.core.registry import get_registry
from c3llm.plugins.datasets.synthetic import (
    SyntheticDataset,
    SyntheticDatasetConfig,
    WorldConfig,
    generate_world,
)

TINY = WorldConfig(seed=5, num_train=6, num_test=3, num_test_novel=2, duration=1.0, max_events=3)


@pytest.fixture()
def world(tmp_path) -> Path:
    return generate_world(TINY, tmp_path / "world", progress=False).root


def test_registered_and_built_by_name(world):
    dataset = get_registry().build("dataset", {"name": "synthetic", "root": str(world), "split": "test"})
    assert isinstance(dataset, SyntheticDataset)
    samples = list(dataset)
    assert [s.id for s in samples] == ["test_0000", "test_0001", "test_0002"]
    for s in samples:
        assert s.split == "test" and s.audio_path.is_absolute() and s.audio_path.is_file()
        assert s.video_path.suffix == ".mp4" and s.video_path.is_file()
        assert len(s.captions) == 5 and s.label == s.metadata["source"]
        assert s.metadata["onsets"] and s.metadata["id"] == s.id
    assert dataset.skipped == [] and len(dataset) == 3


def test_limit_and_novel_split(world):
    assert len(SyntheticDataset(SyntheticDatasetConfig(root=str(world), limit=4))) == 4
    novel = list(SyntheticDataset(SyntheticDatasetConfig(root=str(world), split="test_novel")))
    assert {(s.label, s.metadata["attributes"]["pitch"]) for s in novel} <= set(TINY.novel_combinations)


def test_missing_and_broken_media_are_skipped_and_counted(world, caplog):
    (world / "audio" / "train_0001_000000.wav").unlink()
    (world / "video" / "train_0003_000000.mp4").write_bytes(b"not an mp4 at all")
    dataset = SyntheticDataset(SyntheticDatasetConfig(root=str(world), split="train"))
    with caplog.at_level("WARNING"):
        ids = [s.id for s in dataset]
    assert ids == ["train_0000", "train_0002", "train_0004", "train_0005"]
    assert [s.id for s in dataset.skipped] == ["train_0001", "train_0003"]
    assert "audio file missing" in dataset.skipped[0].reason
    assert "unreadable video" in dataset.skipped[1].reason
    assert "skipped 2 of 6 clips" in caplog.text


def test_missing_world_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="generate_world"):
        list(SyntheticDataset(SyntheticDatasetConfig(root=str(tmp_path))))


def test_config_errors_name_the_key_and_the_fix():
    with pytest.raises(ConfigError, match="split.*'test_novel'"):
        from_mapping(SyntheticDatasetConfig, {"root": "x", "split": "novel"})
    with pytest.raises(ConfigError, match="do not fit in a 1.0 s clip"):
        from_mapping(WorldConfig, {"duration": 1.0, "max_events": 4})
    with pytest.raises(ConfigError, match="not in sources"):
        WorldConfig(sources=("beep", "knock"), novel_combinations=(("bell", "low"),))
    with pytest.raises(ConfigError, match="is not a \\(source, pitch\\) pair"):
        from_mapping(WorldConfig, {"novel_combinations": [["beep", "loud"]]})
    with pytest.raises(ConfigError, match="Did you mean 'num_train'"):
        from_mapping(WorldConfig, {"num_trains": 3})
    config = from_mapping(WorldConfig, {"novel_combinations": [["hiss", "high"]], "video_size": [32, 48]})
    assert config.novel_combinations == (("hiss", "high"),) and config.video_size == (32, 48)


# The public-dataset readers (another module) must read the world's copies of their layouts.
_readers = all(importlib.util.find_spec(f"c3llm.plugins.datasets.{m}") for m in ("audiocaps", "clotho", "vggsound"))


@pytest.mark.skipif(not _readers, reason="public dataset readers not installed")
@pytest.mark.parametrize(("name", "params", "split"), [
    ("audiocaps", {"split": "train"}, "train"),
    ("audiocaps", {"split": "test", "manifest_pattern": "test_novel.csv",
                   "audio_pattern": "audio/test_novel/{youtube_id}.wav"}, "test_novel"),
    ("clotho", {"split": "development"}, "train"),
    ("clotho", {"split": "evaluation"}, "test"),
    ("vggsound", {"split": "test"}, "test"),
    ("vggsound", {"split": "test", "manifest": "vggsound_test_novel.csv"}, "test_novel"),
])
def test_public_readers_read_the_world(world, name, params, split):
    ours = {s.id: s for s in SyntheticDataset(SyntheticDatasetConfig(root=str(world), split=split))}
    theirs = list(get_registry().build("dataset", {"name": name, "root": str(world), **params}))
    assert len(theirs) == len(ours)
    for sample in theirs:
        clip = ours[sample.id.removesuffix(".wav").removesuffix("_000000")]
        assert sample.audio_path.read_bytes() == clip.audio_path.read_bytes()
        if name == "vggsound":
            assert sample.label == clip.label and sample.video_path == clip.video_path
        else:
            assert sample.captions == clip.captions
