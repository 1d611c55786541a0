"""prepare_features / load_prepared with tiny test-double components on real media files.

The doubles satisfy the role contracts with real (if simple) computation: a codec that
quantises frame energy and zero-crossing rate, an audio encoder of log band energies and a
video encoder of per-frame colour and motion, each followed by a seeded linear layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import attrs
import av
import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from c3llm.app.features.cache import FeatureCache
from c3llm.app.features.prepare import prepare_features
from c3llm.app.features.prepared import load_prepared
from c3llm.core.config import field, in_range
from c3llm.core.errors import CheckpointError, InputError
from c3llm.core.media import Audio, Video, load_audio, load_audio_track
from c3llm.core.roles import Decoder, Encoder, Features, Sample

# ---------------------------------------------------------------------------------------
# Test doubles


@attrs.frozen(kw_only=True)
class EnergyCodecConfig:
    sample_rate: int = field(8000, help="Hz")
    hop: int = field(200, help="samples per code frame", validator=in_range(1))
    cardinality: int = field(16, help="entries per codebook", validator=in_range(2))


class EnergyCodec(Decoder):
    """Codebook 1: quantised log frame energy (scaled by a learnable gain);
    codebook 2: quantised zero-crossing rate."""

    def __init__(self, config: EnergyCodecConfig):
        super().__init__()
        self.config = config
        self.sample_rate, self.channels = config.sample_rate, 1
        self.frame_rate = config.sample_rate / config.hop
        self.num_codebooks, self.cardinality = 2, config.cardinality
        self.gain = nn.Parameter(torch.tensor(1.0))
        self.calls = 0

    def _frames(self, wav: torch.Tensor) -> torch.Tensor:
        mono = wav.mean(1)  # (B, T)
        S = math.ceil(mono.shape[-1] / self.config.hop)
        mono = nn.functional.pad(mono, (0, S * self.config.hop - mono.shape[-1]))
        return mono.reshape(mono.shape[0], S, self.config.hop)  # (B, S, hop)

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        frames = self._frames(wav)
        energy = frames.pow(2).mean(-1).add(1e-8).log10() * self.gain  # (B, S), about [-8, 0]
        k = self.cardinality
        c1 = ((energy + 8) / 8 * k).floor().clamp(0, k - 1)
        zcr = (frames[..., 1:].sign() != frames[..., :-1].sign()).float().mean(-1)  # (B, S) in [0, 1]
        c2 = (zcr * k).floor().clamp(0, k - 1)
        return torch.stack([c1, c2], 1).long()  # (B, Q, S)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        k, hop = self.cardinality, self.config.hop
        amp = 10 ** (((codes[:, 0].float() + 0.5) / k * 8 - 8) / 2)  # (B, S) rms
        t = torch.arange(hop) / self.sample_rate
        tone = math.sqrt(2) * torch.sin(2 * math.pi * 440 * t)  # (hop,)
        return (amp[..., None] * tone).reshape(codes.shape[0], 1, -1)  # (B, 1, S * hop)


@attrs.frozen(kw_only=True)
class BandEncoderConfig:
    dim: int = field(6, help="output width", validator=in_range(1))
    bands: int = field(8, help="frequency bands", validator=in_range(1))


class BandEncoder(Encoder):
    """Log energies of ``bands`` FFT bands per 50 ms frame at 8 kHz, then a linear layer."""

    modality: ClassVar[str] = "audio"
    frame = 400

    def __init__(self, config: BandEncoderConfig):
        super().__init__()
        self.config = config
        self.output_dim, self.feature_rate = config.dim, 8000 / self.frame
        self.proj = nn.Linear(config.bands, config.dim)

    def forward(self, media: Sequence[Audio]) -> Features:
        rows = []
        for clip in media:
            wav = clip.to(8000, 1).waveform[0]  # (T,)
            n = wav.shape[0] // self.frame
            if n == 0:
                raise InputError(f"audio of {clip.duration:.3f} s is shorter than one 50 ms feature frame")
            spec = torch.fft.rfft(wav[: n * self.frame].reshape(n, self.frame)).abs()  # (N, F)
            bands = torch.stack([b.pow(2).mean(-1) for b in spec.chunk(self.config.bands, -1)], -1)
            rows.append(self.proj(bands.add(1e-8).log()))  # (N, D)
        return _pad(rows, self.output_dim)


@attrs.frozen(kw_only=True)
class MotionEncoderConfig:
    dim: int = field(5, help="output width", validator=in_range(1))


class MotionEncoder(Encoder):
    """Per-frame mean RGB and mean absolute frame difference, then a linear layer."""

    modality: ClassVar[str] = "video"

    def __init__(self, config: MotionEncoderConfig):
        super().__init__()
        self.config = config
        self.output_dim, self.feature_rate = config.dim, None
        self.proj = nn.Linear(4, config.dim)

    def forward(self, media: Sequence[Video]) -> Features:
        rows = []
        for video in media:
            frames = video.frames.float() / 255  # (N, H, W, 3)
            colour = frames.mean((1, 2))  # (N, 3)
            motion = torch.cat([torch.zeros(1), (frames[1:] - frames[:-1]).abs().mean((1, 2, 3))])  # (N,)
            rows.append(self.proj(torch.cat([colour, motion[:, None]], -1)))
        return _pad(rows, self.output_dim)


def _pad(rows: list[torch.Tensor], dim: int) -> Features:
    width = max(r.shape[0] for r in rows)
    embeds = torch.zeros(len(rows), width, dim)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        embeds[i, : r.shape[0]], mask[i, : r.shape[0]] = r, True
    return Features(embeds, mask)


class TinyModel(nn.Module):
    """What prepare needs of a C3LLM: ``decoder``, ``encoders`` and ``encode_media``."""

    def __init__(self, codec: Decoder | None = None, audio: bool = True, video: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.decoder = codec if codec is not None else EnergyCodec(EnergyCodecConfig())
        encoders = {}
        if audio:
            encoders["audio"] = BandEncoder(BandEncoderConfig())
        if video:
            encoders["video"] = MotionEncoder(MotionEncoderConfig())
        self.encoders = nn.ModuleDict(encoders)

    def encode_media(self, modality: str, media: Sequence) -> list[torch.Tensor]:
        with torch.no_grad():
            feats = self.encoders[modality](list(media))
        return [feats.embeds[i][feats.mask[i]] for i in range(feats.embeds.shape[0])]


# ---------------------------------------------------------------------------------------
# Media on disk


def _tone(seconds: float, rate: int, freq: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.linspace(0.05, 0.8, t.size)
    wav = envelope * np.sin(2 * np.pi * freq * t)
    return np.stack([wav * (1 - 0.3 * c) for c in range(channels)], 1).astype(np.float32)  # (T, C)


def _video(n: int, seed: int) -> Video:
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 255, (n, 16, 16, 3), dtype=torch.uint8, generator=g)
    return Video.from_frames(frames, 10.0)


def _write_video_with_audio(path, seconds: float = 0.6, rate: int = 16000) -> None:
    with av.open(str(path), "w") as container:
        vs = container.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 16, 16, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for i in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 20 * i, np.uint8), format="rgb24")
            container.mux(vs.encode(frame))
        container.mux(vs.encode())
        wav = _tone(seconds, rate, 330.0).T  # (1, T)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wav), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        container.mux(audio.encode(frame))
        container.mux(audio.encode())


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Six good clips (audio + video; one stereo, one audio-only) of varied lengths."""
    root = tmp_path_factory.mktemp("media")
    samples = []
    for i in range(6):
        audio = root / f"clip{i}.wav"
        seconds = 0.5 if i % 2 else 0.75  # two lengths: exercises grouping by length
        sf.write(str(audio), _tone(seconds, 16000, 200.0 + 50 * i, channels=2 if i == 1 else 1), 16000)
        video = None
        if i != 5:
            video = _video(6 + i, seed=i).save(root / f"clip{i}.mp4")
        samples.append(Sample(id=f"clip{i}", split="train", audio_path=audio, video_path=video,
                              captions=(f"tone number {i}",), label=f"label{i % 2}"))
    return samples


def _counts(report, kind):
    c = report.counts[kind]
    return (c.computed, c.reused, c.repaired, c.failed, c.no_media)


def _no_temp_files(root):
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")] == []


# ---------------------------------------------------------------------------------------
# Tests


def test_prepare_computes_exact_values_then_reuses_everything(media, tmp_path):
    model = TinyModel()
    report = prepare_features(model, media, tmp_path, batch_size=4, progress=False)
    assert _counts(report, "codes") == (6, 0, 0, 0, 0)
    assert _counts(report, "audio") == (6, 0, 0, 0, 0)
    assert _counts(report, "video") == (5, 0, 0, 0, 1)  # clip5 has no video
    assert report.failures == [] and report.skipped_kinds == {}
    assert _no_temp_files(tmp_path)

    codec = model.decoder
    codes_cache = FeatureCache(tmp_path, report.keys["codes"])
    for sample in media:
        stored = codes_cache.get(sample.id)["codes"]
        wav = load_audio(sample.audio_path).to(codec.sample_rate, codec.channels).waveform
        expected = codec.encode(wav[None])[0]  # (Q, S)
        assert stored.dtype == torch.int16  # compact: cardinality 16
        assert stored.shape == (2, math.ceil(wav.shape[-1] / codec.config.hop))
        assert torch.equal(stored.long(), expected)
    audio_cache = FeatureCache(tmp_path, report.keys["audio"])
    clip = load_audio(media[1].audio_path)
    expected = model.encode_media("audio", [clip])[0]
    stored = audio_cache.get("clip1")["features"]
    assert stored.dtype == torch.float32 and torch.allclose(stored, expected)

    again = prepare_features(model, media, tmp_path, batch_size=4, progress=False)
    for kind in ("codes", "audio"):
        assert _counts(again, kind) == (0, 6, 0, 0, 0)
    assert _counts(again, "video") == (0, 5, 0, 0, 1)
    assert again.keys == report.keys


def test_interrupted_run_resumes_where_it_stopped(media, tmp_path, monkeypatch):
    model = TinyModel()
    codec = model.decoder
    original = codec.encode
    k = 2

    def interrupted(wav):
        if codec.calls == k:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of the run
        return original(wav)

    monkeypatch.setattr(codec, "encode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_features(model, media, tmp_path, batch_size=1, progress=False)
    assert _no_temp_files(tmp_path)
    monkeypatch.undo()
    codec.calls = 0
    report = prepare_features(model, media, tmp_path, batch_size=1, progress=False)
    # items 0..k-1 were complete (codes, audio, video per batch of one); the rest is new
    assert _counts(report, "codes") == (6 - k, k, 0, 0, 0)
    assert _counts(report, "audio") == (6 - k, k, 0, 0, 0)
    assert _counts(report, "video") == (5 - k, k, 0, 0, 1)
    assert codec.calls == 6 - k


def test_corrupt_entries_are_detected_and_recomputed(media, tmp_path):
    model = TinyModel()
    first = prepare_features(model, media, tmp_path, progress=False)
    codes = FeatureCache(tmp_path, first.keys["codes"])
    feats = FeatureCache(tmp_path, first.keys["audio"])
    # clone: entries are memory-mapped, and this test damages the files in place
    good_codes, good_feats = codes.get("clip2")["codes"].clone(), feats.get("clip3")["features"].clone()
    path = codes.path("clip2")
    path.write_bytes(path.read_bytes()[:-7])  # truncated
    path = feats.path("clip3")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x55  # same size, damaged bytes: only the checksum can tell
    path.write_bytes(bytes(data))

    report = prepare_features(model, media, tmp_path, progress=False)
    assert _counts(report, "codes") == (1, 5, 0, 0, 0)  # truncated: dropped on open, recomputed
    assert _counts(report, "audio") == (1, 5, 1, 0, 0)  # damaged: found on verify, repaired
    assert torch.equal(FeatureCache(tmp_path, first.keys["codes"]).get("clip2")["codes"], good_codes)
    assert torch.equal(FeatureCache(tmp_path, first.keys["audio"]).get("clip3")["features"], good_feats)


def test_changed_config_or_weights_get_a_new_key(media, tmp_path):
    base = prepare_features(TinyModel(), media[:2], tmp_path, kinds=("codes",), progress=False)
    other_hop = TinyModel(codec=EnergyCodec(EnergyCodecConfig(hop=100)))
    changed = prepare_features(other_hop, media[:2], tmp_path, kinds=("codes",), progress=False)
    assert changed.keys["codes"] != base.keys["codes"]
    assert _counts(changed, "codes") == (2, 0, 0, 0, 0)
    retrained = TinyModel()
    with torch.no_grad():
        retrained.decoder.gain.fill_(1.5)  # same config, new weights: stale codes must not be reused
    again = prepare_features(retrained, media[:2], tmp_path, kinds=("codes",), progress=False)
    assert again.keys["codes"] not in (base.keys["codes"], changed.keys["codes"])
    assert _counts(again, "codes") == (2, 0, 0, 0, 0)
    assert len({p.name for p in tmp_path.iterdir()}) == 3


def test_broken_media_are_counted_and_listed(media, tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    empty = root / "empty.wav"
    empty.write_bytes(b"")
    garbage = root / "garbage.wav"
    garbage.write_bytes(b"RIFF but not really a wave file" * 10)
    short = root / "short.wav"
    sf.write(str(short), _tone(0.02, 16000, 300.0), 16000)  # shorter than one encoder frame
    still = _video(1, seed=9).save(root / "still.mp4")  # one frame: not a moving picture
    silent_video = _video(4, seed=3).save(root / "silent.mp4")  # no audio track
    bad = [
        Sample(id="missing", split="train", audio_path=root / "nope.wav"),
        Sample(id="empty", split="train", audio_path=empty),
        Sample(id="garbage", split="train", audio_path=garbage, video_path=still),
        Sample(id="short", split="train", audio_path=short),
        Sample(id="silent", split="train", video_path=silent_video),
    ]
    report = prepare_features(TinyModel(), [*media[:2], *bad], tmp_path / "cache", batch_size=8, progress=False)
    failed = {(f.id, f.kind) for f in report.failures}
    assert failed == {
        ("missing", "codes"), ("missing", "audio"), ("empty", "codes"), ("empty", "audio"),
        ("garbage", "codes"), ("garbage", "audio"), ("garbage", "video"),
        ("short", "audio"),  # the codec copes with 20 ms; the encoder refuses it alone
        ("silent", "codes"), ("silent", "audio"),
    }
    reasons = {(f.id, f.kind): f.reason for f in report.failures}
    assert "not found" in reasons[("missing", "codes")]
    assert "empty" in reasons[("empty", "audio")]
    assert "cannot decode" in reasons[("garbage", "codes")]
    assert "single frame" in reasons[("garbage", "video")]
    assert "shorter than one 50 ms" in reasons[("short", "audio")]
    assert "no audio track" in reasons[("silent", "codes")]
    assert _counts(report, "codes") == (3, 0, 0, 4, 0)  # the good two + short
    assert _counts(report, "audio") == (2, 0, 0, 5, 0)
    assert _counts(report, "video") == (3, 0, 0, 1, 3)  # silent's video is fine
    groups = report.failure_counts()
    assert sum(groups.values()) == 10
    assert groups["codes: audio file not found:"] == 1  # reasons grouped without their paths
    assert "failed x1: video: " in report.summary()
    # the failures are retried (not cached as successes) on the next run
    again = prepare_features(TinyModel(), [*media[:2], *bad], tmp_path / "cache", progress=False)
    assert _counts(again, "codes") == (0, 3, 0, 4, 0)


def test_codes_from_the_audio_track_of_a_video(tmp_path):
    video = tmp_path / "with_audio.mp4"
    _write_video_with_audio(video)
    track = load_audio_track(video)
    assert track.sample_rate == 16000 and track.channels == 1 and track.duration >= 0.6
    assert track.waveform.abs().max() > 0.3  # the tone, not silence
    model = TinyModel()
    sample = Sample(id="v", split="train", video_path=video)
    report = prepare_features(model, [sample], tmp_path / "cache", progress=False)
    assert [_counts(report, k)[0] for k in ("codes", "audio", "video")] == [1, 1, 1]
    stored = FeatureCache(tmp_path / "cache", report.keys["codes"]).get("v")["codes"]
    expected = model.decoder.encode(track.to(8000, 1).waveform[None])[0]
    assert torch.equal(stored.long(), expected)


def test_kinds_without_a_component_are_skipped_and_named(media, tmp_path):
    report = prepare_features(TinyModel(video=False), media[:2], tmp_path, progress=False)
    assert report.skipped_kinds == {"video": "the model has no video encoder"}
    assert set(report.counts) == {"codes", "audio"}
    assert "video  skipped: the model has no video encoder" in report.summary()
    with pytest.raises(InputError, match="unknown feature kind 'vidoe'.*'video'"):
        prepare_features(TinyModel(), media[:1], tmp_path, kinds=("vidoe",))


def test_duplicates_and_float16_storage(media, tmp_path):
    report = prepare_features(TinyModel(), [media[0], media[0], media[1]], tmp_path, kinds=("audio",),
                              feature_dtype=torch.float16, progress=False)
    assert report.duplicates == ["clip0"] and _counts(report, "audio") == (2, 0, 0, 0, 0)
    stored = FeatureCache(tmp_path, report.keys["audio"]).get("clip0")["features"]
    assert stored.dtype == torch.float16
    exact = TinyModel().encode_media("audio", [load_audio(media[0].audio_path)])[0]
    assert torch.allclose(stored.float(), exact, rtol=1e-3, atol=1e-3)
    assert report.to_dict()["counts"]["audio"]["computed"] == 2


def test_load_prepared_returns_tensors_and_sample_fields(media, tmp_path):
    model = TinyModel()
    prepare_features(model, media, tmp_path, progress=False)
    data = load_prepared(tmp_path, model, media)
    assert len(data) == 6 and data.skipped == []
    item = data[0]
    assert item["id"] == "clip0" and item["captions"] == ("tone number 0",) and item["label"] == "label0"
    assert item["codes"].dtype == torch.long and item["codes"].shape[0] == 2
    assert item["audio"].dtype == torch.float32 and item["audio"].shape[1] == 6
    assert item["video"].shape == (6, 5)
    assert "video" not in data[5]  # clip5 has no video
    v2a = load_prepared(tmp_path, model, media, kinds=("codes",), require=("codes", "video"))
    assert [it["id"] for it in v2a] == [f"clip{i}" for i in range(5)]
    assert [s.id for s in v2a.skipped] == ["clip5"]
    retrained = TinyModel()
    with torch.no_grad():
        retrained.decoder.gain.fill_(2.0)
    with pytest.raises(CheckpointError, match="no codes features prepared.*run prepare"):
        load_prepared(tmp_path, retrained, media, require=("codes",))


def test_load_prepared_raises_on_corrupt_entry(media, tmp_path):
    model = TinyModel()
    report = prepare_features(model, media[:1], tmp_path, kinds=("codes",), progress=False)
    data = load_prepared(tmp_path, model, media[:1], kinds=("codes",))
    path = FeatureCache(tmp_path, report.keys["codes"]).path("clip0")
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum.*prepare again"):
        data[0]


def test_prepare_with_the_real_tiny_presets(media, tmp_path):
    """The registered plugins (tiny presets, random init), where they are installed; the codec
    falls back to the double while no ``encodec`` decoder is registered."""
    from c3llm.core.registry import get_registry

    registry = get_registry()
    encoders = registry.names("encoder")
    if not {"clap", "rgb-flow"} <= set(encoders):
        pytest.skip(f"clap / rgb-flow encoders not registered (have {encoders})")
    model = TinyModel()
    if "encodec" in registry.names("decoder"):
        model.decoder = registry.build("decoder", {"name": "encodec", "preset": "tiny"})
    model.encoders["audio"] = registry.build("encoder", {"name": "clap", "preset": "tiny", "num_local_frames": 8})
    model.encoders["video"] = registry.build("encoder", {"name": "rgb-flow", "fps": 10.0, "frame_size": 32})
    for component in (model.decoder, *model.encoders.values()):
        component.load_pretrained()  # no-op without weights; the random init is seeded
    samples = media[:3]
    report = prepare_features(model, samples, tmp_path, batch_size=2, progress=False)
    assert report.failures == []
    assert [_counts(report, k)[0] for k in ("codes", "audio", "video")] == [3, 3, 3]
    assert report.keys["audio"].startswith("audio-clap-") and report.keys["video"].startswith("video-rgb-flow-")
    data = load_prepared(tmp_path, model, samples)
    codec = model.decoder
    for sample, item in zip(samples, data):
        seconds = load_audio(sample.audio_path).duration
        assert item["codes"].shape[0] == codec.num_codebooks
        assert abs(item["codes"].shape[1] - math.ceil(seconds * codec.frame_rate)) <= 1
        assert int(item["codes"].max()) < codec.cardinality
        assert item["audio"].shape[1] == model.encoders["audio"].output_dim
        assert item["video"].shape[1] == model.encoders["video"].output_dim
    expected = model.encode_media("audio", [load_audio(samples[0].audio_path)])[0]
    assert torch.allclose(data[0]["audio"], expected, atol=1e-5)
    again = prepare_features(model, samples, tmp_path, progress=False)
    assert [_counts(again, k)[:2] for k in ("codes", "audio", "video")] == [(0, 3)] * 3
