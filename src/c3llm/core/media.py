"""Audio and video values passed between the SDK, encoders and codecs, and their file I/O.

Decoding errors become :class:`~c3llm.core.errors.MediaError` naming the file and the
problem; nothing here crashes deep inside a library on a bad file.
"""

from __future__ import annotations

import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import attrs
import numpy as np
import torch

from c3llm.core.errors import InputError, MediaError, OutputError

#: Audio file types :meth:`Audio.save` writes, by suffix (soundfile format names).
AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".aiff": "AIFF", ".aif": "AIFF"}


@attrs.frozen(eq=False)
class Audio:
    """A waveform. :ivar waveform: ``(C, T)`` float32 in [-1, 1]. :ivar sample_rate: Hz."""

    waveform: torch.Tensor
    sample_rate: int

    def __attrs_post_init__(self) -> None:
        w = self.waveform
        if not isinstance(w, torch.Tensor) or w.dim() != 2:
            raise InputError(f"Audio.waveform must be a (channels, samples) tensor, got {getattr(w, 'shape', type(w))}")
        if not w.is_floating_point():
            raise InputError(f"Audio.waveform must be float, got {w.dtype}")
        if not isinstance(self.sample_rate, int) or self.sample_rate <= 0:
            raise InputError(f"Audio.sample_rate must be a positive int, got {self.sample_rate!r}")
        if not torch.isfinite(w).all():
            raise InputError("Audio.waveform contains NaN or infinite samples")

    @property
    def channels(self) -> int:
        return self.waveform.shape[0]

    @property
    def num_samples(self) -> int:
        return self.waveform.shape[1]

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.num_samples / self.sample_rate

    def save(self, path: str | Path) -> Path:
        """Write a 16-bit PCM WAV (or any format soundfile knows by the suffix: ``.flac``,
        ``.ogg``, …). The file is written beside ``path`` under a temporary name and renamed
        into place, so a full or read-only disk leaves nothing behind; failures are
        :class:`~c3llm.core.errors.OutputError` naming the file."""
        import soundfile as sf

        path = Path(path)
        fmt = AUDIO_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise OutputError(f"cannot write {path}: unknown audio file type {path.suffix or '(no suffix)'!r}; "
                              f"use one of {', '.join(sorted(AUDIO_FORMATS))}")
        data = self.waveform.detach().cpu().float().clamp(-1, 1).numpy().T  # (T, C)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            sf.write(tmp, data, self.sample_rate, format=fmt, subtype="PCM_16" if fmt == "WAV" else None)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as exc:  # soundfile raises LibsndfileError (a RuntimeError)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise OutputError(f"cannot write {path}: {reason}") from exc
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def to(self, sample_rate: int, channels: int | None = None) -> Audio:
        """Resampled (polyphase) and, if asked, down/up-mixed copy."""
        wav = self.waveform
        if channels is not None and channels != self.channels:
            if channels == 1:
                wav = wav.mean(0, keepdim=True)
            elif self.channels == 1:
                wav = wav.expand(channels, -1).clone()
            else:
                raise InputError(f"cannot mix {self.channels} channels into {channels}")
        return Audio(resample(wav, self.sample_rate, sample_rate), sample_rate)


def resample(wav: torch.Tensor, src: int, dst: int) -> torch.Tensor:
    """Polyphase resampling of ``(..., T)`` from ``src`` Hz to ``dst`` Hz (scipy)."""
    if src == dst:
        return wav
    from scipy.signal import resample_poly

    ratio = Fraction(dst, src).limit_denominator(1000)
    out = resample_poly(wav.detach().cpu().double().numpy(), ratio.numerator, ratio.denominator, axis=-1)
    expected = math.ceil(wav.shape[-1] * dst / src)
    out = out[..., :expected]
    return torch.from_numpy(np.ascontiguousarray(out)).to(wav.dtype)


def load_audio(path: str | Path) -> Audio:
    """Read an audio file (WAV, FLAC, OGG, …) as float32 ``(C, T)``."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"audio file not found: {path}")
    if path.stat().st_size == 0:
        raise MediaError(f"audio file is empty (0 bytes): {path}")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (T, C)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError
        raise MediaError(f"cannot decode audio {path}: {exc}. Is it a valid audio file?") from exc
    if data.shape[0] == 0:
        raise MediaError(f"audio file has no samples: {path}")
    if not np.isfinite(data).all():
        raise MediaError(f"audio file contains NaN or infinite samples: {path}")
    return Audio(torch.from_numpy(np.ascontiguousarray(data.T)), int(rate))


@attrs.frozen(eq=False)
class Video:
    """Decoded video frames.

    :ivar frames: ``(N, H, W, 3)`` uint8 RGB. :ivar times: ``(N,)`` float64 presentation
        times in seconds (variable frame rate is kept). :ivar duration: seconds.
    """

    frames: torch.Tensor
    times: torch.Tensor
    duration: float

    def __attrs_post_init__(self) -> None:
        f = self.frames
        if f.dim() != 4 or f.shape[-1] != 3 or f.dtype != torch.uint8:
            raise InputError(f"Video.frames must be (N, H, W, 3) uint8, got {tuple(f.shape)} {f.dtype}")
        if f.shape[0] == 0:
            raise InputError("Video has no frames")
        if self.times.shape != (f.shape[0],):
            raise InputError(f"Video.times must be ({f.shape[0]},), got {tuple(self.times.shape)}")
        if not self.duration > 0:
            raise InputError(f"Video.duration must be > 0, got {self.duration}")

    @classmethod
    def from_frames(cls, frames: torch.Tensor, fps: float) -> Video:
        """Constant-rate video from ``(N, H, W, 3)`` uint8 frames."""
        n = frames.shape[0]
        times = torch.arange(n, dtype=torch.float64) / fps
        return cls(frames, times, n / fps)

    def save(self, path: str | Path, fps: float | None = None, audio: Audio | None = None) -> Path:
        """Write an H.264 (yuv420p) MP4 with PyAV at ``fps`` (default: mean frame rate), with
        ``audio`` muxed in as an AAC soundtrack when given."""
        import av

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fps = fps or self.frames.shape[0] / self.duration
        n, h, w, _ = self.frames.shape
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
            stream.width, stream.height = w - w % 2, h - h % 2
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast"}
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=audio.sample_rate)
                sound.layout = "mono" if audio.channels == 1 else "stereo"
            for frame in self.frames[:, : stream.height, : stream.width].numpy():
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
            if sound is not None:
                samples = audio.waveform[:2].clamp(-1, 1).numpy().astype(np.float32)  # (C, T) planar
                chunk = 1024
                for start in range(0, samples.shape[1], chunk):
                    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + chunk]),
                                                       format="fltp", layout=sound.layout.name)
                    frame.sample_rate = audio.sample_rate
                    frame.pts = start
                    for packet in sound.encode(frame):
                        container.mux(packet)
                for packet in sound.encode():
                    container.mux(packet)
        return path


def load_video(path: str | Path, *, max_frames: int | None = None, max_seconds: float | None = None) -> Video:
    """Decode the frames of a video file (mp4, webm, avi, …) with PyAV.

    :param max_seconds: decode only the first ``max_seconds`` (decoding stops there; the
        returned video lasts at most that long). ``None`` decodes everything.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"video file not found: {path}")
    if path.stat().st_size == 0:
        raise MediaError(f"video file is empty (0 bytes): {path}")
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise InputError(f"max_seconds must be a positive number, got {max_seconds!r}")
    frames, times = [], []
    clipped = False
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path} has no video stream")
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else len(times) / float(stream.average_rate or 25)
                if max_seconds is not None and times and float(t) - times[0] >= max_seconds:
                    clipped = True
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(t))
                if max_frames and len(frames) >= max_frames:
                    break
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
    except MediaError:
        raise
    except Exception as exc:  # av.error.InvalidDataError and friends
        raise MediaError(f"cannot decode video {path}: {exc}") from exc
    if not frames:
        raise MediaError(f"no decodable frame in {path}")
    t = torch.tensor(times, dtype=torch.float64)
    t = t - t[0]
    step = float(t[1] - t[0]) if len(t) > 1 else 0.0
    if len(frames) == 1:
        raise MediaError(
            f"{path} holds a single frame (a still image?); video-to-audio needs a moving "
            f"picture. Turn a still into a clip first, e.g. Video.from_frames(frame.repeat(N,1,1,1), fps)."
        )
    end = float(t[-1]) + step
    duration = duration if duration and duration >= end - 2 * step else end
    if max_seconds is not None and (clipped or duration > max_seconds):
        duration = min(duration, float(max_seconds))
    return Video(torch.from_numpy(np.stack(frames)), t, duration)


def load_audio_track(path: str | Path) -> Audio:
    """The first audio stream of a video (or any container PyAV reads) as float32 ``(C, T)``."""
    import av

    path = Path(path)
    if not path.is_file():
        raise MediaError(f"video file not found: {path}")
    if path.stat().st_size == 0:
        raise MediaError(f"video file is empty (0 bytes): {path}")
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path} has no audio track; give the sample a separate audio file")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp")  # planar float, same layout and rate
            rate = None
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    rate = out.sample_rate
                    chunks.append(out.to_ndarray())  # (C, n)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except MediaError:
        raise
    except Exception as exc:  # av.error.InvalidDataError and friends
        raise MediaError(f"cannot decode the audio track of {path}: {exc}") from exc
    if not chunks or rate is None:
        raise MediaError(f"the audio track of {path} holds no samples")
    data = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if not np.isfinite(data).all():
        raise MediaError(f"the audio track of {path} contains NaN or infinite samples")
    return Audio(torch.from_numpy(np.ascontiguousarray(data)), int(rate))
