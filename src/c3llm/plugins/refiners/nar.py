"""VALL-E-style non-autoregressive refiner: predicts codebooks 2..Q from codebook 1 (paper eq. 2).

Sequence fed to a bidirectional transformer encoder::

    [ <start> | cond_1 … cond_N | frame_1 … frame_S ]

- ``<start>``: one learned token that is never masked. It anchors attention when the
  condition is empty or dropped (classifier-free guidance), so no row is fully masked.
- ``cond_n``: the condition (text embeddings or projected video features, width
  ``cond_dim``) normalised and projected to the refiner width ``dim``.
- ``frame_s``: for stage ``k`` (predicting 0-based codebook ``k``), the *sum* of the
  embeddings of codebooks ``0..k-1`` at frame ``s`` plus a learned stage embedding for ``k``.

Condition and code frames carry their own sinusoidal positions (each starting at 0, with a
learned scale as in VALL-E) and a learned segment embedding. A head per stage maps the
frame outputs to ``cardinality`` logits. The paper uses Q = 2 (one stage); any Q >= 2 works.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from c3llm.core.config import field, in_range
from c3llm.core.errors import ConfigError, InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.roles.refiner import Refiner

_BOUND = ("num_codebooks", "cardinality", "cond_dim")


@attrs.frozen(kw_only=True)
class NARRefinerConfig:
    """Config of the ``nar`` refiner. Bound fields are filled in by the pipeline."""

    num_codebooks: int | None = field(
        None, bind="decoder.num_codebooks", validator=in_range(2),
        help="Q: codebooks including codebook 1 (the refiner predicts 2..Q); from the codec.",
    )
    cardinality: int | None = field(
        None, bind="decoder.cardinality", validator=in_range(2),
        help="K: entries per codebook; from the codec.",
    )
    cond_dim: int | None = field(
        None, bind="backbone.hidden_size", validator=in_range(1),
        help="width of the condition embeddings; from the backbone's hidden size.",
    )
    dim: int = field(512, validator=in_range(8), help="transformer width")
    num_layers: int = field(6, validator=in_range(1), help="transformer encoder layers")
    num_heads: int = field(8, validator=in_range(1), help="attention heads (must divide dim)")
    ff_mult: int = field(4, validator=in_range(1), help="feed-forward width = ff_mult * dim")
    dropout: float = field(0.1, validator=in_range(0.0, 0.9), help="dropout inside the transformer")
    max_frames: int = field(
        3000, validator=in_range(1),
        help="longest code (or condition) sequence accepted; sizes the position table",
    )
    cond_dropout: float = field(
        0.0, validator=in_range(0.0, 1.0),
        help="probability of dropping an item's whole condition in training (classifier-free guidance)",
    )
    guidance_scale: float = field(
        1.0, validator=in_range(0.0),
        help="classifier-free guidance scale used by refine(); 1.0 = plain conditional logits "
             "(values != 1 are meaningful only after training with cond_dropout > 0)",
    )

    def __attrs_post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide dim ({self.dim})")


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """``(length, dim)`` sine/cosine position table (Vaswani et al.)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table


class NARRefiner(Refiner):
    """Non-autoregressive transformer predicting codebook ``k`` given codebooks ``< k``."""

    def __init__(self, config: NARRefinerConfig):
        super().__init__()
        missing = [name for name in _BOUND if getattr(config, name) is None]
        if missing:
            raise ConfigError(
                f"refiner 'nar': {', '.join(missing)} not set; set it in the [refiner] config "
                f"or build the refiner through a Pipeline, which takes num_codebooks/cardinality "
                f"from the decoder and cond_dim from the backbone"
            )
        self.config = config
        self.num_codebooks = config.num_codebooks
        self.cardinality = config.cardinality
        self.cond_dim = config.cond_dim
        dim, stages = config.dim, config.num_codebooks - 1

        self.cond_proj = nn.Sequential(nn.LayerNorm(config.cond_dim), nn.Linear(config.cond_dim, dim))
        self.start = nn.Parameter(torch.randn(dim) * dim**-0.5)
        # Codebooks 0..Q-2 are inputs; codebook Q-1 is only ever predicted.
        self.code_embeds = nn.ModuleList(nn.Embedding(config.cardinality, dim) for _ in range(stages))
        self.stage_embed = nn.Embedding(stages, dim)
        self.segment_embed = nn.Embedding(2, dim)  # 0: condition, 1: code frames
        self.cond_pos_scale = nn.Parameter(torch.ones(()))
        self.code_pos_scale = nn.Parameter(torch.ones(()))
        self.register_buffer("positions", sinusoids(config.max_frames, dim), persistent=False)
        layer = nn.TransformerEncoderLayer(
            d_model=dim, nhead=config.num_heads, dim_feedforward=config.ff_mult * dim,
            dropout=config.dropout, activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=config.num_layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False
        )
        self.heads = nn.ModuleList(nn.Linear(dim, config.cardinality) for _ in range(stages))
        for emb in (*self.code_embeds, self.stage_embed, self.segment_embed):
            nn.init.normal_(emb.weight, std=dim**-0.5)

    # -- the role contract ----------------------------------------------------------------

    def forward(
        self,
        cond: torch.Tensor,
        cond_mask: torch.Tensor,
        codes: torch.Tensor,
        code_mask: torch.Tensor,
        stage: int,
    ) -> torch.Tensor:
        """``(B, S, K)`` logits for 0-based codebook ``stage`` given codebooks ``< stage``.

        In training mode each item's condition is dropped with probability ``cond_dropout``.
        Logits at padded frames (``code_mask`` False) are meaningless.
        """
        self._check(cond, cond_mask, codes, code_mask, stage)
        drop = None
        if self.training and self.config.cond_dropout > 0:
            drop = torch.rand(cond.shape[0], device=cond.device) < self.config.cond_dropout  # (B,)
        return self._logits(cond, cond_mask, codes, code_mask, stage, drop)

    def loss(
        self, cond: torch.Tensor, cond_mask: torch.Tensor, codes: torch.Tensor, code_mask: torch.Tensor
    ) -> torch.Tensor:
        """Cross-entropy (eq. 2) of one stage drawn uniformly from ``1..Q-1`` for the batch,
        over real frames only. :param codes: ``(B, Q, S)``. :return: scalar."""
        if codes.dim() != 3 or codes.shape[1] != self.num_codebooks:
            raise InputError(
                f"refiner loss needs codes (B, Q={self.num_codebooks}, S), got {tuple(codes.shape)}; "
                f"encode the training audio with the pipeline's codec"
            )
        stage = int(torch.randint(1, self.num_codebooks, ()).item())
        logits = self(cond, cond_mask, codes, code_mask, stage)  # (B, S, K)
        real = code_mask.bool()
        if not real.any():
            raise InputError("refiner loss: code_mask marks no real frame in the batch")
        return F.cross_entropy(logits[real], codes[:, stage][real])

    @torch.no_grad()
    def refine(
        self, cond: torch.Tensor, cond_mask: torch.Tensor, coarse: torch.Tensor, code_mask: torch.Tensor
    ) -> torch.Tensor:
        """Greedy, stage by stage: ``(B, 1, S)`` codebook-1 codes -> ``(B, Q, S)``.

        Codebook 1 is returned unchanged; fine codes at padded frames are 0. Runs in eval
        mode (the module's mode is restored afterwards).
        """
        if coarse.dim() != 3 or coarse.shape[1] != 1:
            raise InputError(
                f"refine needs coarse codes (B, 1, S) (codebook 1 only), got {tuple(coarse.shape)}"
            )
        was_training = self.training
        self.eval()
        try:
            real = code_mask.bool()
            codes = coarse.new_zeros(coarse.shape[0], self.num_codebooks, coarse.shape[2])
            codes[:, 0] = coarse[:, 0]
            for stage in range(1, self.num_codebooks):
                self._check(cond, cond_mask, codes, code_mask, stage)
                logits = self._guided_logits(cond, cond_mask, codes, code_mask, stage)  # (B, S, K)
                codes[:, stage] = logits.argmax(-1).masked_fill(~real, 0)
            return codes
        finally:
            self.train(was_training)

    # -- internals ------------------------------------------------------------------------

    def _guided_logits(self, cond, cond_mask, codes, code_mask, stage) -> torch.Tensor:
        scale = self.config.guidance_scale
        if scale == 1.0:
            return self._logits(cond, cond_mask, codes, code_mask, stage, None)
        batch = cond.shape[0]
        drop = torch.cat([torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)])
        logits = self._logits(
            torch.cat([cond, cond]), torch.cat([cond_mask, cond_mask]),
            torch.cat([codes, codes]), torch.cat([code_mask, code_mask]), stage, drop.to(cond.device),
        )
        conditional, unconditional = logits[:batch], logits[batch:]
        return unconditional + scale * (conditional - unconditional)

    def _logits(
        self,
        cond: torch.Tensor,
        cond_mask: torch.Tensor,
        codes: torch.Tensor,
        code_mask: torch.Tensor,
        stage: int,
        drop: torch.Tensor | None,
    ) -> torch.Tensor:
        batch, n_cond, _ = cond.shape
        n_frames = codes.shape[2]
        cond_mask, code_mask = cond_mask.bool(), code_mask.bool()
        if drop is not None:
            cond_mask = cond_mask & ~drop[:, None]  # a dropped condition is fully masked

        x_cond = self.cond_proj(cond.to(self.start.dtype))  # (B, N, dim)
        x_cond = x_cond + self.cond_pos_scale * self.positions[:n_cond] + self.segment_embed.weight[0]

        # Padded frames may hold any value (e.g. -1); they are masked, so embed them as 0.
        known = codes[:, :stage].masked_fill(~code_mask[:, None, :], 0)  # (B, stage, S)
        x_code = sum(self.code_embeds[q](known[:, q]) for q in range(stage))  # (B, S, dim)
        x_code = (
            x_code
            + self.stage_embed.weight[stage - 1]
            + self.code_pos_scale * self.positions[:n_frames]
            + self.segment_embed.weight[1]
        )

        start = self.start.expand(batch, 1, -1)  # (B, 1, dim)
        x = torch.cat([start, x_cond, x_code], dim=1)  # (B, 1 + N + S, dim)
        keep = torch.cat([cond_mask.new_ones(batch, 1), cond_mask, code_mask], dim=1)  # (B, 1+N+S)
        h = self.encoder(x, src_key_padding_mask=~keep)  # (B, 1 + N + S, dim)
        return self.heads[stage - 1](h[:, 1 + n_cond:])  # (B, S, K)

    def _check(self, cond, cond_mask, codes, code_mask, stage) -> None:
        """Validate shapes, dtypes and ranges with messages that say what to pass instead."""
        q = self.num_codebooks
        if not isinstance(stage, int) or not 1 <= stage < q:
            raise InputError(f"stage must be an int in [1, {q - 1}] (0-based codebook to predict), got {stage!r}")
        if cond.dim() != 3 or cond.shape[-1] != self.cond_dim:
            raise InputError(
                f"cond must be (B, N, cond_dim={self.cond_dim}) condition embeddings, got "
                f"{tuple(cond.shape)}; cond_dim comes from backbone.hidden_size"
            )
        batch, n_cond = cond.shape[:2]
        if cond_mask.shape != (batch, n_cond):
            raise InputError(f"cond_mask must be (B, N) = {(batch, n_cond)}, got {tuple(cond_mask.shape)}")
        if codes.dim() != 3 or codes.shape[0] != batch or codes.shape[1] < stage:
            raise InputError(
                f"codes must be (B={batch}, Q' >= {stage}, S) holding codebooks below stage {stage}, "
                f"got {tuple(codes.shape)}"
            )
        if codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise InputError(f"codes must be integer codebook indices, got dtype {codes.dtype}")
        n_frames = codes.shape[2]
        if code_mask.shape != (batch, n_frames):
            raise InputError(f"code_mask must be (B, S) = {(batch, n_frames)}, got {tuple(code_mask.shape)}")
        longest = max(n_cond, n_frames)
        if longest > self.config.max_frames:
            raise InputError(
                f"sequence of {longest} frames exceeds max_frames={self.config.max_frames}; "
                f"shorten the clip or raise refiner.max_frames"
            )
        used = codes[:, :stage][code_mask.bool()[:, None, :].expand(-1, stage, -1)]
        if used.numel() and (used.min() < 0 or used.max() >= self.cardinality):
            raise InputError(
                f"codes at real frames must lie in [0, {self.cardinality}), got range "
                f"[{int(used.min())}, {int(used.max())}]; were they made by a codec with another cardinality?"
            )


@hookimpl
def register_refiners(register):
    register(
        "nar", NARRefiner, NARRefinerConfig,
        description="VALL-E-style non-autoregressive transformer: codebooks 2..Q from codebook 1 + condition",
    )
