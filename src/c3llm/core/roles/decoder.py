"""The decoder role: the neural audio codec (EnCodec-like, residual vector quantisation)."""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

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
