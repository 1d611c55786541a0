"""The refiner role: adds codebooks 2..Q to the LLM's coarse (codebook-1) codes."""

from __future__ import annotations

import abc

import torch
from torch import nn

from c3llm.core.roles.base import Component


class Refiner(Component, nn.Module, abc.ABC):
    """Non-autoregressive predictor of fine codebooks (paper eq. 2).

    Instances set ``num_codebooks`` (Q, codebook 1 included), ``cardinality`` (K) and
    ``cond_dim`` (D of the condition embeddings: the backbone's hidden size).
    The condition is text embeddings or projected video features, ``(B, N, D)`` with a
    ``(B, N)`` bool mask.
    """

    num_codebooks: int
    cardinality: int
    cond_dim: int

    @abc.abstractmethod
    def forward(
        self,
        cond: torch.Tensor,
        cond_mask: torch.Tensor,
        codes: torch.Tensor,
        code_mask: torch.Tensor,
        stage: int,
    ) -> torch.Tensor:
        """Logits for codebook ``stage`` (1-based index 2..Q as ``stage`` in ``[1, Q)``).

        :param cond: ``(B, N, D)``; :param cond_mask: ``(B, N)`` bool.
        :param codes: ``(B, Q', S)`` codes of codebooks ``< stage`` (``Q' >= stage``; later
            codebooks are ignored). :param code_mask: ``(B, S)`` bool, True for real frames.
        :return: ``(B, S, K)`` logits for codebook index ``stage`` (0-based).
        """

    @abc.abstractmethod
    def loss(
        self, cond: torch.Tensor, cond_mask: torch.Tensor, codes: torch.Tensor, code_mask: torch.Tensor
    ) -> torch.Tensor:
        """Training loss (eq. 2): cross-entropy of a stage drawn per batch, given the
        codebooks below it and the condition. :param codes: ``(B, Q, S)``. :return: scalar."""

    @abc.abstractmethod
    def refine(
        self, cond: torch.Tensor, cond_mask: torch.Tensor, coarse: torch.Tensor, code_mask: torch.Tensor
    ) -> torch.Tensor:
        """Predict codebooks 2..Q stage by stage (greedy).

        :param coarse: ``(B, 1, S)`` codebook-1 codes. :return: ``(B, Q, S)`` codes whose
        first codebook is ``coarse``.
        """
