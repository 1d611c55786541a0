"""Spectral features in torch (no torchaudio): mel filterbanks and mel spectrograms.

Shared by the codec's training losses and the weight-free ``logmel`` encoder.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale."""
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=32)
def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)``, area-normalised (Slaney style)."""
    f_max = f_max or sample_rate / 2
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    edges = mel_to_hz(torch.linspace(hz_to_mel(torch.tensor(f_min)), hz_to_mel(torch.tensor(f_max)),
                                     n_mels + 2, dtype=torch.float64))  # (M + 2,)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (M, 1)
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0)  # (M, F)
    filters = filters * (2.0 / (upper - lower))
    return filters.float()


def mel_spectrogram(wav: torch.Tensor, sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Mel magnitude spectrogram of ``(B, C, T)`` -> ``(B, C, M, frames)`` (hann, hop n_fft/4)."""
    b, c, t = wav.shape
    flat = wav.reshape(b * c, t)
    if t < n_fft // 2 + 1:  # reflect padding of the centred STFT needs a little length
        flat = F.pad(flat, (0, n_fft // 2 + 1 - t))
    spec = torch.stft(
        flat, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft, device=wav.device, dtype=wav.dtype),
        center=True, return_complex=True,
    ).abs()  # (B*C, F, frames)
    filters = mel_filterbank(n_fft, n_mels, sample_rate).to(wav.device, wav.dtype)  # (M, F)
    mel = filters @ spec  # (B*C, M, frames)
    return mel.reshape(b, c, n_mels, -1)
