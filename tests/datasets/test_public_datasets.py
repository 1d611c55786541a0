"""Public dataset readers (AudioCaps, Clotho, VGGSound, VAS) on tiny fixture sets in each layout."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from c3llm.core.config import from_mapping
from c3llm.core.errors import ConfigError, InputError
from c3llm.core.media import Video
from c3llm.core.registry import get_registry
from c3llm.plugins.datasets.audiocaps import AudioCaps, AudioCapsConfig
from c3llm.plugins.datasets.clotho import Clotho, ClothoConfig
from c3llm.plugins.datasets.vas import VAS, VASConfig
from c3llm.plugins.datasets.vggsound import VGGSound, VGGSoundConfig
from c3llm.testing.contracts import check_dataset

RATE = 8000


# -- fixture media ----------------------------------------------------------------------


def write_wav(path: Path, seconds: float = 0.1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), RATE, subtype="PCM_16")
    return path


def write_mp4(path: Path, *, with_audio: bool = False) -> Path:
    """A 4-frame 16x16 H.264 clip, optionally with an AAC sound track."""
    frames = torch.arange(4, dtype=torch.uint8).mul(60)[:, None, None, None].expand(4, 16, 16, 3).contiguous()
    if not with_audio:
        return Video.from_frames(frames, fps=8).save(path)
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=Fraction(8))
        video.width = video.height = 16
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for frame in frames.numpy():
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        wave = (0.3 * np.sin(np.arange(8000) / 10)).astype(np.float32)[None]
        chunk = av.AudioFrame.from_ndarray(wave, format="flt", layout="mono")
        chunk.sample_rate = 16000
        for packet in [*audio.encode(chunk), *audio.encode()]:
            container.mux(packet)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def build(cls, config_cls, **params):
    return cls(from_mapping(config_cls, params, where="dataset"))


# -- AudioCaps --------------------------------------------------------------------------


@pytest.fixture
def audiocaps_root(tmp_path):
    write_text(tmp_path / "train.csv", "\n".join([
        "audiocap_id,youtube_id,start_time,caption",
        "1,yt_a,30,A dog barks",
        "2,yt_b,0,\"Rain falls, thunder rolls\"",
        "3,yt_a,30,A dog barks twice",
        "4,yt_missing,10,Nobody home",
        "5,yt_empty,10,Silence",
        "6,yt_broken,10,Noise",
        "7,yt_c,5,Birds sing",
        "",
    ]))
    write_text(tmp_path / "test.csv", "audiocap_id,youtube_id,start_time,caption\n9,yt_t,0,A car passes\n")
    for clip in ("yt_a", "yt_b", "yt_c"):
        write_wav(tmp_path / "audio" / "train" / f"{clip}.wav")
    write_wav(tmp_path / "audio" / "test" / "yt_t.wav")
    (tmp_path / "audio" / "train" / "yt_empty.wav").write_bytes(b"")
    (tmp_path / "audio" / "train" / "yt_broken.wav").write_bytes(b"RIFF not really a wave file")
    return tmp_path


def test_audiocaps_groups_captions_and_reports_skips(audiocaps_root, caplog):
    data = build(AudioCaps, AudioCapsConfig, root=str(audiocaps_root), split="train")
    with caplog.at_level(logging.WARNING, logger="c3llm.plugins.datasets.manifest"):
        samples = list(data)
    assert [s.id for s in samples] == ["yt_a", "yt_b", "yt_c"]
    assert samples[0].captions == ("A dog barks", "A dog barks twice")
    assert samples[1].captions == ("Rain falls, thunder rolls",)
    assert samples[0].metadata == {"audiocap_ids": ("1", "3"), "start_time": 30}
    assert samples[0].audio_path == (audiocaps_root / "audio/train/yt_a.wav").absolute()
    assert samples[0].video_path is None and samples[0].label is None and samples[0].split == "train"
    assert [s.id for s in data.skipped] == ["yt_missing", "yt_empty", "yt_broken"]
    reasons = [s.reason for s in data.skipped]
    assert "missing" in reasons[0] and "empty (0 bytes)" in reasons[1] and "unreadable audio" in reasons[2]
    records = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(records) == 1 and "skipped 3 of 6 entries" in records[0].getMessage()
    check_dataset(data, min_samples=3)
    assert len(data) == 3  # cached: no second scan, no second log line
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 1


def test_audiocaps_split_limit_and_custom_pattern(audiocaps_root, tmp_path):
    test = build(AudioCaps, AudioCapsConfig, root=str(audiocaps_root), split="test")
    assert [(s.id, s.captions) for s in test] == [("yt_t", ("A car passes",))]
    assert len(build(AudioCaps, AudioCapsConfig, root=str(audiocaps_root), limit=2)) == 2
    (audiocaps_root / "flat").mkdir()
    write_wav(audiocaps_root / "flat" / "yt_t_0.wav")
    flat = build(AudioCaps, AudioCapsConfig, root=str(audiocaps_root), split="test",
                 audio_pattern="flat/{youtube_id}_{start_time}.wav")
    assert next(iter(flat)).audio_path.name == "yt_t_0.wav"
    with pytest.raises(ConfigError, match=r"unknown placeholder \{clip\}"):
        from_mapping(AudioCapsConfig, {"root": "x", "audio_pattern": "{clip}.wav"}, where="dataset")
    with pytest.raises(ConfigError, match="'val'"):
        from_mapping(AudioCapsConfig, {"root": "x", "split": "valid"}, where="dataset")


@pytest.mark.parametrize(
    "content, message",
    [
        ("audiocap_id,youtube_id,caption\n1,yt_a,hi\n", r"train.csv:1: expected the header"),
        ("audiocap_id,youtube_id,start_time,caption\n1,yt_a,30,ok\n2,yt_b,0\n", r"train.csv:3: expected 4 columns"),
        ("audiocap_id,youtube_id,start_time,caption\n1,yt_a,soon,ok\n", r"train.csv:2: column 'start_time' must be"),
        ("audiocap_id,youtube_id,start_time,caption\n1,,30,ok\n", r"train.csv:2: column 'youtube_id' is empty"),
    ],
)
def test_audiocaps_malformed_manifest(tmp_path, content, message):
    write_text(tmp_path / "train.csv", content)
    with pytest.raises(InputError, match=message):
        list(build(AudioCaps, AudioCapsConfig, root=str(tmp_path)))


def test_missing_manifest_and_root_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"audiocaps: manifest not found: .*val.csv"):
        list(build(AudioCaps, AudioCapsConfig, root=str(tmp_path), split="val"))
    with pytest.raises(ConfigError, match="is not a directory"):
        list(build(AudioCaps, AudioCapsConfig, root=str(tmp_path / "nowhere")))


# -- Clotho -----------------------------------------------------------------------------

CLOTHO_HEADER = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5"


def test_clotho_five_captions_splits_and_skips(tmp_path):
    write_text(tmp_path / "clotho_captions_development.csv", "\n".join([
        CLOTHO_HEADER,
        "rain on roof.wav,c1,c2,c3,c4,\"c5, with a comma\"",
        "gone.wav,a,b,c,d,e",
        "birds.wav,b1,b2,b3,b4,b5",
    ]) + "\n")
    write_text(tmp_path / "clotho_captions_evaluation.csv", f"{CLOTHO_HEADER}\nev.wav,1,2,3,4,5\n")
    write_wav(tmp_path / "development" / "rain on roof.wav")
    write_wav(tmp_path / "development" / "birds.wav")
    write_wav(tmp_path / "evaluation" / "ev.wav")

    dev = build(Clotho, ClothoConfig, root=str(tmp_path))
    samples = list(dev)
    assert [s.id for s in samples] == ["rain on roof.wav", "birds.wav"]
    assert samples[0].captions == ("c1", "c2", "c3", "c4", "c5, with a comma")
    assert all(len(s.captions) == 5 for s in samples)
    assert samples[0].audio_path == (tmp_path / "development" / "rain on roof.wav").absolute()
    assert [(s.id, "missing" in s.reason) for s in dev.skipped] == [("gone.wav", True)]
    check_dataset(dev, min_samples=2)
    evaluation = build(Clotho, ClothoConfig, root=str(tmp_path), split="evaluation")
    assert [s.split for s in evaluation] == ["evaluation"]


def test_clotho_malformed_manifest(tmp_path):
    write_text(tmp_path / "clotho_captions_validation.csv", f"{CLOTHO_HEADER}\nx.wav,1,2,3,4\n")
    with pytest.raises(InputError, match=r"clotho_captions_validation.csv:2: expected 6 columns"):
        list(build(Clotho, ClothoConfig, root=str(tmp_path), split="validation"))
    write_text(tmp_path / "clotho_captions_validation.csv", "file_name,caption\nx.wav,1\n")
    with pytest.raises(InputError, match=r":1: expected the header 'file_name,caption_1"):
        list(build(Clotho, ClothoConfig, root=str(tmp_path), split="validation"))


# -- VGGSound ---------------------------------------------------------------------------


@pytest.fixture
def vggsound_root(tmp_path):
    write_text(tmp_path / "vggsound.csv", "\n".join([
        "-abc,30,dog barking,train",            # video + separate wav
        "def,0,\"engine, idling\",train",        # video with its own sound track, no wav
        "ghi,12,lions roaring,test",
        "jkl,5,rain,train",                      # video missing
        "mno,7,silence,train",                   # silent video, no wav
        "pqr,9,broken wav,train",                # wav present but corrupt
    ]) + "\n")
    write_mp4(tmp_path / "video" / "-abc_000030.mp4")
    write_wav(tmp_path / "audio" / "-abc_000030.wav")
    write_mp4(tmp_path / "video" / "def_000000.mp4", with_audio=True)
    write_mp4(tmp_path / "video" / "ghi_000012.mp4")
    write_wav(tmp_path / "audio" / "ghi_000012.wav")
    write_mp4(tmp_path / "video" / "mno_000007.mp4")
    write_mp4(tmp_path / "video" / "pqr_000009.mp4")
    (tmp_path / "audio" / "pqr_000009.wav").write_bytes(b"\x00" * 64)
    return tmp_path


def test_vggsound_labels_audio_sources_and_skips(vggsound_root):
    train = build(VGGSound, VGGSoundConfig, root=str(vggsound_root))
    samples = list(train)
    assert [(s.id, s.label) for s in samples] == [("-abc_000030", "dog barking"), ("def_000000", "engine, idling")]
    wav, track = samples
    assert wav.audio_path == (vggsound_root / "audio" / "-abc_000030.wav").absolute()
    assert wav.video_path == (vggsound_root / "video" / "-abc_000030.mp4").absolute()
    assert wav.metadata == {"youtube_id": "-abc", "start_seconds": 30, "audio_in_video": False}
    assert track.audio_path is None and track.metadata["audio_in_video"] is True
    assert all(s.captions == () for s in samples)
    reasons = {s.id: s.reason for s in train.skipped}
    assert set(reasons) == {"jkl_000005", "mno_000007", "pqr_000009"}
    assert "video file missing" in reasons["jkl_000005"]
    assert "no audio stream" in reasons["mno_000007"]
    assert "unreadable audio" in reasons["pqr_000009"]
    check_dataset(train, min_samples=2)
    test = build(VGGSound, VGGSoundConfig, root=str(vggsound_root), split="test")
    assert [(s.id, s.split, s.label) for s in test] == [("ghi_000012", "test", "lions roaring")]
    assert test.skipped == []


@pytest.mark.parametrize(
    "row, message",
    [
        ("abc,30,dog,validation", r"vggsound.csv:2: split must be 'train' or 'test'"),
        ("abc,thirty,dog,train", r"vggsound.csv:2: column 'start_seconds'"),
        ("abc,30,train", r"vggsound.csv:2: expected 4 columns"),
    ],
)
def test_vggsound_malformed_manifest(tmp_path, row, message):
    write_text(tmp_path / "vggsound.csv", f"zzz,1,cat,test\n{row}\n")
    with pytest.raises(InputError, match=message):
        list(build(VGGSound, VGGSoundConfig, root=str(tmp_path)))


def test_unreadable_video_is_skipped(tmp_path):
    write_text(tmp_path / "vggsound.csv", "abc,1,cat,train\n")
    write_text(tmp_path / "video" / "abc_000001.mp4", "this is not an mp4")
    data = build(VGGSound, VGGSoundConfig, root=str(tmp_path))
    assert list(data) == []
    assert "unreadable video" in data.skipped[0].reason


# -- VAS --------------------------------------------------------------------------------


def test_vas_specvqgan_layout(tmp_path):
    write_text(tmp_path / "vas_train.txt", "dog/video_00001\ndog/video_00002\nbaby/video_00003\n\ngun/video_00004\n")
    write_text(tmp_path / "vas_valid.txt", "sneeze/video_00009\n")
    write_mp4(tmp_path / "videos" / "dog" / "video_00001.mp4")
    write_wav(tmp_path / "features" / "dog" / "audio_10s_22050hz" / "video_00001.wav")
    write_mp4(tmp_path / "videos" / "dog" / "video_00002.mp4", with_audio=True)
    (tmp_path / "videos" / "baby").mkdir(parents=True)
    (tmp_path / "videos" / "baby" / "video_00003.mp4").write_bytes(b"")
    write_mp4(tmp_path / "videos" / "sneeze" / "video_00009.mp4", with_audio=True)

    train = build(VAS, VASConfig, root=str(tmp_path))
    samples = list(train)
    assert [(s.id, s.label) for s in samples] == [("dog/video_00001", "dog"), ("dog/video_00002", "dog")]
    assert samples[0].audio_path.name == "video_00001.wav" and samples[0].metadata["audio_in_video"] is False
    assert samples[1].audio_path is None and samples[1].metadata["audio_in_video"] is True
    assert samples[1].video_path == (tmp_path / "videos" / "dog" / "video_00002.mp4").absolute()
    assert [(s.id, s.reason.split(":")[0]) for s in train.skipped] == [
        ("baby/video_00003", "video file is empty (0 bytes)"),
        ("gun/video_00004", "video file missing"),
    ]
    check_dataset(train, min_samples=2)
    valid = build(VAS, VASConfig, root=str(tmp_path), split="valid")
    assert [(s.id, s.split, s.label) for s in valid] == [("sneeze/video_00009", "valid", "sneeze")]


def test_vas_split_file_next_to_root_as_in_a_specvqgan_checkout(tmp_path):
    write_text(tmp_path / "vas_valid.txt", "drum/video_00001\n")
    write_mp4(tmp_path / "vas" / "videos" / "drum" / "video_00001.mp4", with_audio=True)
    data = build(VAS, VASConfig, root=str(tmp_path / "vas"), split="valid",
                 split_file_pattern="../vas_{split}.txt")
    assert [s.label for s in data] == ["drum"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("dog/video_1\nvideo_2\n", r"vas_train.txt:2: expected <class>/<video_id>, got 'video_2'"),
        ("cat/video_1\n", r"vas_train.txt:1: unknown class 'cat'; expected one of baby, cough"),
        ("dog/a/b\n", r"vas_train.txt:1: expected <class>/<video_id>"),
    ],
)
def test_vas_malformed_split_file(tmp_path, content, message):
    write_text(tmp_path / "vas_train.txt", content)
    with pytest.raises(InputError, match=message):
        list(build(VAS, VASConfig, root=str(tmp_path)))


def test_vas_missing_split_file(tmp_path):
    with pytest.raises(ConfigError, match=r"vas: manifest not found: .*vas_test.txt.*rows <class>/<video_id>"):
        list(build(VAS, VASConfig, root=str(tmp_path), split="test"))


# -- registry ---------------------------------------------------------------------------


def test_readers_are_registered_and_build_without_io(tmp_path):
    registry = get_registry(refresh=True)
    for name in ("audiocaps", "clotho", "vggsound", "vas"):
        dataset = registry.build("dataset", {"name": name, "root": str(tmp_path / "absent")})
        assert dataset.skipped == [] and dataset.root == tmp_path / "absent"
