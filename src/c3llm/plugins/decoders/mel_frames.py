"""Log-mel code frames and Griffin-Lim synthesis: the signal path shared by the mel-domain
codecs (``melvq``: k-means codebooks; ``mel-rvq``: a trained encoder, RVQ and decoder).

A *code frame* stacks ``frames_per_code`` consecutive log-mel frames into one vector, so one
code covers ``stft_hop * frames_per_code`` samples (640 at the defaults: 25 codes/s at 16 kHz).
Synthesis maps log-mel back to STFT magnitudes with the pseudo-inverse of the mel filterbank
and recovers a phase with fast Griffin-Lim (Perraudin et al., 2013); the initial phase comes
from a seed, so decoding is deterministic.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from c3llm.core.spectral import mel_filterbank


class MelFrames(nn.Module):
    """``features``: ``(B, 1, T)`` -> ``(B, S, frames_per_code * n_mels)`` stacked log-mel frames;
    ``synthesize``: the inverse, up to phase."""

    def __init__(self, *, sample_rate: int, n_fft: int, stft_hop: int, frames_per_code: int, n_mels: int,
                 log_floor: float, griffin_lim_iters: int, griffin_lim_momentum: float, seed: int):
        super().__init__()
        self.n_fft, self.stft_hop, self.frames_per_code, self.n_mels = n_fft, stft_hop, frames_per_code, n_mels
        self.log_floor, self.iters, self.momentum, self.seed = log_floor, griffin_lim_iters, griffin_lim_momentum, seed
        self.hop_length = stft_hop * frames_per_code
        self.dim = frames_per_code * n_mels
        filters = mel_filterbank(n_fft, n_mels, sample_rate)  # (M, F)
        self.register_buffer("mel_filters", filters, persistent=False)
        self.register_buffer("mel_inverse", torch.linalg.pinv(filters), persistent=False)  # (F, M)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` waveform -> ``(B, S, D)`` stacked log-mel frames, ``S = ceil(T / hop_length)``."""
        b, _, t = wav.shape
        s = math.ceil(t / self.hop_length)
        flat = torch.nn.functional.pad(wav[:, 0], (0, s * self.hop_length - t))  # (B, S * hop)
        spec = torch.stft(flat, self.n_fft, self.stft_hop, window=self.window, center=True,
                          pad_mode="constant", return_complex=True).abs()[..., : s * self.frames_per_code]  # (B, F, N)
        logmel = torch.log(self.mel_filters @ spec + self.log_floor)  # (B, M, N)
        return logmel.transpose(1, 2).reshape(b, s, self.dim)

    def synthesize(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, S, D)`` log-mel frames -> ``(B, 1, S * hop_length)`` audio."""
        b, s, _ = features.shape
        logmel = features.reshape(b, s * self.frames_per_code, self.n_mels).transpose(1, 2)  # (B, M, N)
        mel = (logmel.exp() - self.log_floor).clamp_min(0)
        magnitude = (self.mel_inverse @ mel).clamp_min(0)  # (B, F, N)
        return griffin_lim(magnitude, self.n_fft, self.stft_hop, self.window, length=s * self.hop_length,
                           iters=self.iters, momentum=self.momentum, seed=self.seed)[:, None]


def griffin_lim(
    magnitude: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, *, length: int,
    iters: int, momentum: float, seed: int,
) -> torch.Tensor:
    """Fast Griffin-Lim: a waveform ``(B, length)`` whose STFT magnitude approaches ``magnitude``
    ``(B, F, N)``. The initial phase is drawn from ``seed``, so the result is deterministic."""
    gen = torch.Generator().manual_seed(seed)
    phase = torch.rand(magnitude.shape, generator=gen).to(magnitude.device, magnitude.dtype)
    angles = torch.polar(torch.ones_like(magnitude), 2 * math.pi * phase)
    previous = torch.zeros_like(angles)

    def stft(wav: torch.Tensor) -> torch.Tensor:
        return torch.stft(wav, n_fft, hop, window=window, center=True, pad_mode="constant",
                          return_complex=True)[..., : magnitude.shape[-1]]

    for _ in range(iters):
        wav = torch.istft(magnitude * angles, n_fft, hop, window=window, center=True, length=length)
        rebuilt = stft(wav)
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous if momentum else rebuilt
        previous = rebuilt
        angles = accelerated / accelerated.abs().clamp_min(1e-8)
    return torch.istft(magnitude * angles, n_fft, hop, window=window, center=True, length=length)
