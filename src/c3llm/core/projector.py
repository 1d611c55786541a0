"""MLP projectors: continuous encoder features into the backbone's embedding space."""

from __future__ import annotations

import torch
from torch import nn


class Projector(nn.Module):
    """``Linear -> GELU -> Linear`` from ``in_dim`` to ``out_dim`` (the paper's MLP).

    A LayerNorm on the input keeps frozen encoders with large activations (CLAP) and
    hand-crafted video features on a comparable scale.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None):
        super().__init__()
        hidden_dim = hidden_dim or out_dim
        self.in_dim, self.out_dim = in_dim, out_dim
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)  # (..., N, in_dim) -> (..., N, out_dim)
