"""The synthetic world generator: determinism, analytic ground truth in the media, layouts."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from c3llm.core.media import load_video
from c3llm.plugins.datasets.synthetic import WorldConfig, generate_world
from c3llm.plugins.datasets.synthetic.sources import SOURCES

# 18 train clips cycle through all 15 seen (source, pitch) pairs, so every source is covered.
TINY = WorldConfig(seed=3, num_train=18, num_test=4, num_test_novel=4, duration=1.5)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    generate_world(TINY, root, progress=False, overwrite=True)
    return root


def rows(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]


def detect_onsets(wav: np.ndarray, sample_rate: int, quiet_seconds: float = 0.025) -> list[float]:
    """Times where |x| first exceeds 10 % of the peak after >= ``quiet_seconds`` below it."""
    loud = np.flatnonzero(np.abs(wav) > 0.1 * np.abs(wav).max())
    gap = round(quiet_seconds * sample_rate)
    starts = [loud[0]] + [b for a, b in zip(loud[:-1], loud[1:]) if b - a > gap]
    return [s / sample_rate for s in starts]


def test_counts_splits_and_metadata_fields(world):
    meta = rows(world)
    assert [sum(r["split"] == s for r in meta) for s in ("train", "test", "test_novel")] == [18, 4, 4]
    assert {r["source"] for r in meta if r["split"] == "train"} == set(SOURCES)
    for r in meta:
        assert list(r)[:11] == ["id", "split", "source", "pitch_hz", "num_events", "onsets", "loudness_db",
                                "duration", "captions", "audio", "video"]
        assert r["num_events"] == len(r["onsets"]) == len(r["offsets"]) and 1 <= r["num_events"] <= 4
        assert all(a < b for a, b in zip(r["onsets"], r["offsets"]))
        assert (r["pitch_hz"] is None) == (r["source"] == "hiss")
        assert len(set(r["captions"])) == len(r["captions"]) == 5
        assert r["duration"] == 1.5
        assert (world / r["audio"]).is_file() and (world / r["video"]).is_file()


def test_same_seed_same_world_other_seed_differs(world, tmp_path):
    again = generate_world(TINY, tmp_path / "again", progress=False).root
    assert (again / "metadata.jsonl").read_bytes() == (world / "metadata.jsonl").read_bytes()
    for r in rows(world):
        a, _ = sf.read(world / r["audio"], dtype="float32")
        b, _ = sf.read(again / r["audio"], dtype="float32")
        np.testing.assert_array_equal(a, b)
    other = generate_world(WorldConfig(seed=4, num_train=3, num_test=0, num_test_novel=0, duration=1.5),
                           tmp_path / "other", progress=False).root
    assert rows(other)[0]["onsets"] != rows(world)[0]["onsets"] or rows(other)[0]["captions"] != rows(world)[0]["captions"]


def test_audio_is_mono_16k_with_onsets_and_level_as_in_metadata(world):
    for r in rows(world):
        wav, rate = sf.read(world / r["audio"], dtype="float32")
        assert rate == 16000 and wav.ndim == 1 and len(wav) == round(1.5 * rate)
        found = detect_onsets(wav, rate)
        assert len(found) == r["num_events"], (r["id"], r["source"], found, r["onsets"])
        np.testing.assert_allclose(found, r["onsets"], atol=0.010, err_msg=f"{r['id']} ({r['source']})")
        peak_db = 20 * np.log10(np.abs(wav).max())
        assert abs(peak_db - r["loudness_db"]) < 0.2, (r["id"], peak_db, r["loudness_db"])


@pytest.mark.parametrize("source", ["beep", "bell", "drone", "knock"])
def test_spectral_peak_is_the_pitch(world, source):
    for r in rows(world):
        if r["source"] != source:
            continue
        wav, rate = sf.read(world / r["audio"], dtype="float32")
        spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
        peak = np.fft.rfftfreq(len(wav), 1 / rate)[spectrum.argmax()]
        assert abs(peak / r["pitch_hz"] - 1) < 0.03, (r["id"], peak, r["pitch_hz"])


def test_visible_events_happen_at_the_onset_frames(world):
    for r in rows(world):
        video = load_video(world / r["video"])
        frames = video.frames.numpy().astype(np.float32)  # (N, H, W, 3)
        assert frames.shape == (18, 64, 64, 3)
        diff = np.zeros(len(frames))
        diff[1:] = np.abs(frames[1:] - frames[:-1]).mean(axis=(1, 2, 3))  # diff[k]: frame k-1 -> k
        for k, onset in zip(r["onset_frames"], r["onsets"]):
            assert abs(float(video.times[k]) - onset) < 1e-3
            window = range(max(1, k - 1), min(len(diff), k + 2))
            peak = max(window, key=lambda j: diff[j])
            assert abs(peak - k) <= 1, (r["id"], r["source"], k, diff.round(2))
            assert diff[k] > 1.0, (r["id"], diff.round(2))
        # before the first event the picture is still (up to the codec's noise)
        assert diff[1:r["onset_frames"][0]].max(initial=0) < 0.1 * diff[r["onset_frames"]].min()


def test_object_height_follows_pitch(world):
    heights = {"high": [], "mid": [], "low": []}
    for r in rows(world):
        frame = load_video(world / r["video"], max_frames=2).frames[0].numpy().astype(np.float32)
        background = np.median(frame, axis=1, keepdims=True)  # (H, 1, 3): object is small
        ys = np.nonzero(np.abs(frame - background).sum(-1) > 30)[0]
        heights[r["attributes"]["pitch"]].append(ys.mean() / frame.shape[0])
    assert max(heights["high"]) < min(heights["mid"]) and max(heights["mid"]) < min(heights["low"])


def test_novel_combinations_never_in_train_or_test(world):
    novel = {tuple(p) for p in TINY.novel_combinations}
    meta = rows(world)
    pairs = {s: {(r["source"], r["attributes"]["pitch"]) for r in meta if r["split"] == s} for s in ("train", "test", "test_novel")}
    assert not pairs["train"] & novel and not pairs["test"] & novel
    assert pairs["test_novel"] <= novel and pairs["test_novel"]


def test_public_layouts_point_at_the_same_audio(world):
    meta = {r["id"]: r for r in rows(world)}
    with (world / "train.csv").open() as f:
        audiocaps = list(csv.DictReader(f))
    assert list(audiocaps[0]) == ["audiocap_id", "youtube_id", "start_time", "caption"]
    assert len(audiocaps) == 18 * 5 and len({a["audiocap_id"] for a in audiocaps}) == len(audiocaps)
    with (world / "clotho_captions_evaluation.csv").open() as f:
        clotho = list(csv.reader(f))
    assert clotho[0] == ["file_name"] + [f"caption_{i}" for i in range(1, 6)] and len(clotho) == 5
    vgg = list(csv.reader((world / "vggsound.csv").open()))
    assert {row[3] for row in vgg} == {"train", "test"} and len(vgg) == 22
    assert len(list(csv.reader((world / "vggsound_test_novel.csv").open()))) == 4
    for row in vgg:
        r = meta[row[0]]
        assert row[2] == r["source"] and (world / f"video/{row[0]}_{int(row[1]):06d}.mp4").is_file()
    for clip_id, r in meta.items():
        canonical = os.stat(world / r["audio"])
        ac_split = {"train": "train", "test": "test", "test_novel": "test_novel"}[r["split"]]
        cl_split = {"train": "development", "test": "evaluation", "test_novel": "test_novel"}[r["split"]]
        for other in (world / "audio" / ac_split / f"{clip_id}.wav", world / cl_split / f"{clip_id}.wav"):
            assert other.read_bytes() == (world / r["audio"]).read_bytes()
            assert os.stat(other).st_ino == canonical.st_ino  # hard link, not a copy


def test_refuses_to_write_over_something_else(world, tmp_path):
    from c3llm.core.errors import InputError

    with pytest.raises(InputError, match="overwrite=True"):
        generate_world(TINY, world, progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds no synthetic world"):
        generate_world(TINY, tmp_path, progress=False, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
