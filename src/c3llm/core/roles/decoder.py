"""The decoder role: the audio codec (EnCodec-like, residual vector quantisation).

"Decoder" is the design card's name for the codec role; the LLM is the *backbone*.
Besides :class:`Decoder` (what a pipeline needs), two contracts say what the
``train-codec`` stage calls on a codec it trains:

- :class:`TrainableDecoder`: learned by gradient descent (``training_forward``), e.g. ``encodec``;
- :class:`FittableDecoder`: learned in closed form (``fit``), e.g. ``melvq``.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from c3llm.core.errors import InputError
from c3llm.core.roles.base import Component


class Decoder(Component, nn.Module, abc.ABC):
    """Turns waveforms into discrete codes and back.

    Attributes every codec sets in ``__init__``:

    - ``sample_rate`` (int, Hz) and ``channels`` (int) of the waveforms it takes and returns;
    - ``frame_rate`` (float): code frames per second;
    - ``num_codebooks`` (int, Q): codebooks produced by ``encode`` and consumed by ``decode``;
    - ``cardinality`` (int, K): entries per codebook; codes lie in ``[0, K)``.
    """

    sample_rate: int
    channels: int
    frame_rate: float
    num_codebooks: int
    cardinality: int

    @property
    def device(self) -> torch.device:
        """Where the codec's tensors live (parameters, else buffers: closed-form codecs have none)."""
        first = next(itertools.chain(self.parameters(), self.buffers()), None)
        return first.device if first is not None else torch.device("cpu")

    @abc.abstractmethod
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Tokenise audio.

        :param wav: ``(B, C, T)`` float waveform at ``sample_rate``.
        :return: ``(B, Q, S)`` long codes, ``S = ceil(T / sample_rate * frame_rate)``.
        """

    @abc.abstractmethod
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Turn codes back into audio.

        :param codes: ``(B, Q', S)`` long codes with ``1 <= Q' <= Q`` (the first ``Q'``
            codebooks; missing ones are treated as absent, not as zeros).
        :return: ``(B, C, T)`` float waveform at ``sample_rate``.
        """

    def frames_for(self, seconds: float) -> int:
        """Number of code frames that cover ``seconds`` of audio."""
        return max(1, math.ceil(seconds * self.frame_rate - 1e-6))

    # -- input checks shared by codecs ----------------------------------------------------

    def check_waveform(self, wav: object) -> None:
        """Raise :class:`InputError` unless ``wav`` is a finite, non-empty ``(B, C, T)`` float tensor."""
        if not isinstance(wav, torch.Tensor):
            raise InputError(f"{type(self).__name__}.encode expects a torch.Tensor (B, C, T), got {type(wav).__name__}")
        if wav.dim() != 3:
            hint = " Add batch/channel axes, e.g. wav[None, None] for a 1-D waveform." if wav.dim() < 3 else ""
            raise InputError(f"{type(self).__name__}.encode expects a (batch, channels, samples) tensor, got shape {tuple(wav.shape)}.{hint}")
        if not wav.is_floating_point():
            raise InputError(f"{type(self).__name__}.encode expects float samples in [-1, 1], got dtype {wav.dtype}")
        if wav.shape[1] != self.channels:
            raise InputError(
                f"{type(self).__name__} takes {self.channels}-channel audio, got {wav.shape[1]} channels; "
                f"mix or duplicate channels first (Audio.to(sample_rate, channels={self.channels}))"
            )
        if wav.shape[0] == 0 or wav.shape[-1] == 0:
            raise InputError(f"{type(self).__name__}.encode got an empty waveform batch of shape {tuple(wav.shape)}")
        if not torch.isfinite(wav).all():
            raise InputError(f"{type(self).__name__}.encode got NaN or infinite samples; clean the audio first")

    def check_codes(self, codes: object) -> None:
        """Raise :class:`InputError` unless ``codes`` is a valid ``(B, Q', S)`` integer tensor."""
        if not isinstance(codes, torch.Tensor) or codes.dim() != 3:
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise InputError(f"{type(self).__name__}.decode expects (batch, codebooks, frames) codes, got {shape}")
        if codes.is_floating_point() or codes.dtype == torch.bool:
            raise InputError(f"{type(self).__name__}.decode expects integer codes, got dtype {codes.dtype}")
        q = codes.shape[1]
        if not 1 <= q <= self.num_codebooks:
            raise InputError(
                f"{type(self).__name__}.decode got {q} codebooks; this codec uses 1..{self.num_codebooks} (num_codebooks)"
            )
        if codes.shape[0] == 0 or codes.shape[-1] == 0:
            raise InputError(f"{type(self).__name__}.decode got empty codes of shape {tuple(codes.shape)}")
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= self.cardinality:
            raise InputError(
                f"{type(self).__name__}.decode got codes in [{low}, {high}], outside [0, {self.cardinality}); "
                f"were they produced by a codec with another codebook size?"
            )


class TrainableDecoder(Decoder):
    """A codec the ``train-codec`` stage trains by gradient descent (the EnCodec recipe: time
    and multi-scale mel reconstruction losses plus the quantiser's commitment loss).

    The stage calls, in order: :meth:`initialise` once on a probe batch (unless its ``init``
    key is ``"none"``), :meth:`training_forward` on random crops each step (the optimiser
    updates the parameters that require grad), :meth:`refit_codebooks` once after the last
    step, then :meth:`save_pretrained`; the codec's ``pretrained`` config key must load what it
    wrote.
    """

    def initialise(self, batch: torch.Tensor) -> None:
        """Optional data-dependent initialisation before the first training step.

        :param batch: ``(B, C, T)`` probe crops of the training audio at ``sample_rate``.

        Called once by ``train-codec`` (``[codec_train] init = "lsuv"``, the default) on a freshly
        built codec. Deep codecs whose default init lets the signal vanish layer by layer (an
        untrained encoder whose output is nearly constant, so every clip decodes alike) rescale
        their layers here, e.g. to unit output std on ``batch`` (LSUV; ``encodec`` does).
        A codec that loaded pretrained weights should keep them. The default does nothing.
        """

    @property
    def total_codebooks(self) -> int:
        """Codebooks the model holds (>= ``num_codebooks``); quantizer dropout draws from them."""
        return self.num_codebooks

    @abc.abstractmethod
    def training_forward(self, wav: torch.Tensor, *, codebook_decay: float, kmeans_iters: int,
                         dead_code_threshold: float, num_quantizers: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One differentiable pass: encode, quantise (updating codebooks by their own rule),
        decode.

        :param wav: ``(B, C, T)`` training crops at ``sample_rate``.
        :param codebook_decay, kmeans_iters, dead_code_threshold: the codebook update rule
            (EMA decay, k-means iterations of the first-batch init, dead-entry threshold);
            a codec whose codebooks learn by gradient may ignore them.
        :param num_quantizers: codebooks to use this step (``None``: all ``total_codebooks``).
        :return: reconstruction ``(B, C, T)`` (gradients reach the parameters) and the
            commitment loss, a scalar tensor.
        """

    def refit_codebooks(self, waves: Sequence[torch.Tensor]) -> None:
        """After training: refit the codebooks on the encoder's frames of ``waves`` (each
        ``(C, T)``). Optional; the default keeps the codebooks as trained."""

    @abc.abstractmethod
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the codec so that its config's ``pretrained = directory`` loads it."""


class FittableDecoder(Decoder):
    """A codec the ``train-codec`` stage learns in closed form (e.g. k-means codebooks)."""

    @abc.abstractmethod
    def fit(self, waves: Sequence[torch.Tensor], *, iters: int) -> dict[str, Any]:
        """Learn from ``waves`` (each ``(C, T)`` at ``sample_rate``); ``iters``: k-means
        iterations. :return: a JSON-able summary for the training report."""

    @abc.abstractmethod
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the codec so that its config's ``pretrained = directory`` loads it."""
