"""Encoder ``logmel``: weight-free log-mel audio features.

The embedded default has no pretrained CLAP, and a randomly initialised CLAP tower carries
no learned semantics while costing about half a second per clip here. This encoder gives
the demo honest, cheap, deterministic features instead — log-mel energies (plus their
temporal difference, which marks onsets) averaged to a fixed feature rate — and the
trainable projector learns the rest. With real CLAP weights, use ``clap``: the pipeline
code is the same.

The energies are standardised with fixed constants, not per frame, and the projector is
told not to normalise each frame (``frame_norm = False``): a per-frame LayerNorm turned the
background noise of silent frames (std 0.1) into unit-variance patterns as loud as the
events (std 3) and erased absolute level, so captions could not tell quiet from loud.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
import torch.nn.functional as F

from c3llm.core.config import field, in_range
from c3llm.core.errors import InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.media import Audio
from c3llm.core.roles import Encoder, Features
from c3llm.core.spectral import mel_spectrogram


@attrs.frozen(kw_only=True)
class LogMelConfig:
    sample_rate: int = field(16000, validator=in_range(4000), help="audio is resampled to this rate (Hz)")
    n_fft: int = field(512, validator=in_range(64), help="STFT size")
    n_mels: int = field(48, validator=in_range(8), help="mel bands")
    feature_rate: float = field(12.5, validator=in_range(0.0, low_open=True), help="feature frames per second")
    deltas: bool = field(True, help="append the frame-to-frame difference (onset cue)")
    level_offset: float = field(-8.0, help="features are (log mel - level_offset) / level_scale; "
                                           "the defaults give the synthetic world mean 0, std 1")
    level_scale: float = field(2.0, validator=in_range(0.0, low_open=True), help="see level_offset")
    max_seconds: float = field(30.0, validator=in_range(0.0, low_open=True), help="longer audio is cut")


class LogMelEncoder(Encoder):
    """``(N, n_mels * (1 + deltas))`` features at ``feature_rate`` frames per second."""

    modality = "audio"
    frame_norm = False  # globally standardised; the level of a frame is information

    def __init__(self, config: LogMelConfig):
        super().__init__()
        self.config = config
        self.output_dim = config.n_mels * (2 if config.deltas else 1)
        self.feature_rate = config.feature_rate

    def _one(self, audio: Audio) -> torch.Tensor:
        cfg = self.config
        if audio.num_samples == 0:
            raise InputError("logmel: audio has no samples")
        wav = audio.to(cfg.sample_rate, channels=1).waveform[:, : int(cfg.max_seconds * cfg.sample_rate)]  # (1, T)
        mel = mel_spectrogram(wav[None], cfg.sample_rate, cfg.n_fft, cfg.n_mels)[0, 0]  # (M, frames)
        logmel = (torch.log(mel.clamp_min(1e-5)) - cfg.level_offset) / cfg.level_scale  # (M, F)
        frames = max(1, round(audio.duration * cfg.feature_rate))
        pooled = F.adaptive_avg_pool1d(logmel[None], frames)[0].T  # (N, M)
        if cfg.deltas:
            delta = torch.diff(pooled, dim=0, prepend=pooled[:1])
            pooled = torch.cat([pooled, delta], dim=-1)  # (N, 2M)
        return pooled

    @torch.no_grad()
    def forward(self, media: Sequence[Audio]) -> Features:
        if not media:
            raise InputError("logmel: empty batch")
        return Features.from_rows([self._one(a) for a in media], self.output_dim)


@hookimpl
def register_encoders(register):
    register("logmel", LogMelEncoder, LogMelConfig, description="weight-free log-mel audio features (embedded default)")
