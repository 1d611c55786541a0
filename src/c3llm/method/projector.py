"""MLP projectors: continuous encoder features into the backbone's embedding space."""

from __future__ import annotations

import torch
from torch import nn


class Projector(nn.Module):
    """``Linear -> GELU -> Linear`` from ``in_dim`` to ``out_dim`` (the paper's MLP).

    With ``frame_norm`` a LayerNorm on each input frame keeps frozen encoders with large
    activations (CLAP) and hand-crafted video features on a comparable scale. It also makes
    every frame equally loud, so encoders whose frame level carries meaning (log-mel: a
    silent frame against an event, quiet against loud) scale their features globally
    instead and turn it off (:attr:`c3llm.core.roles.Encoder.frame_norm`).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None, *, frame_norm: bool = True):
        super().__init__()
        hidden_dim = hidden_dim or out_dim
        self.in_dim, self.out_dim, self.frame_norm = in_dim, out_dim, frame_norm
        self.net = nn.Sequential(  # index 0 stays the norm slot, so state-dict keys do not shift
            nn.LayerNorm(in_dim) if frame_norm else nn.Identity(),
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # (..., N, in_dim) -> (..., N, out_dim), computed in the projector's own dtype
        return self.net(features.to(self.net[1].weight.dtype))
