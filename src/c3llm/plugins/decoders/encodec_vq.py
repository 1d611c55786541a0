"""Training-time residual vector quantisation for transformers' EnCodec codebooks.

transformers' ``EncodecEuclideanCodebook`` is inference-only: it holds the buffers of the
original implementation (``inited``, ``cluster_size``, ``embed``, ``embed_avg``) but no rule
to learn them. This module adds the EnCodec/SoundStream rule:

- **k-means init**: a codebook whose ``inited`` flag is 0 is set from k-means over the first
  batch of encoder frames it sees;
- **EMA update**: ``cluster_size`` and ``embed_avg`` track exponential moving averages of the
  assignment counts and of the summed assigned vectors; ``embed`` is their Laplace-smoothed
  ratio, so codebooks learn without gradients;
- **dead-code expiry**: entries whose EMA count falls under a threshold are re-seeded from
  random frames of the current batch (after the EMA step, so the new entries persist);
- **straight-through** gradients to the encoder and a **commitment** loss pulling encoder
  frames towards their code vectors.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import nn


@attrs.frozen(kw_only=True)
class CodebookLearning:
    """How codebooks learn during training (EnCodec's defaults)."""

    decay: float = 0.99
    epsilon: float = 1e-5
    kmeans_iters: int = 50
    #: EMA count (frames per step, smoothed) under which an entry is re-seeded. EnCodec's 2.0
    #: assumes thousands of frames per step; with a CPU batch (~50 frames over 256 entries, ~0.2
    #: per entry per step) it re-seeded almost every entry every step and the codebooks never
    #: settled. 0.02 expires only entries unused for ~35+ steps at decay 0.99.
    dead_code_threshold: float = 0.02


@attrs.frozen
class QuantizedFrames:
    """Output of :func:`residual_quantize`.

    :ivar quantized: ``(B, D, S)`` sum of the selected code vectors (straight-through).
    :ivar codes: ``(B, Q, S)`` long indices.
    :ivar commitment: scalar, mean over codebooks of ``mse(code vector, residual)``.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment: torch.Tensor


def sample_rows(samples: torch.Tensor, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``num`` random rows of ``samples`` ``(N, D)`` (with replacement only when ``N < num``);
    drawn from ``generator`` when given, else from torch's global generator."""
    n = samples.shape[0]
    if n >= num:
        index = torch.randperm(n, generator=generator)[:num]
    else:
        index = torch.randint(0, n, (num,), generator=generator)
    return samples[index.to(samples.device)]


def kmeans(samples: torch.Tensor, num_clusters: int, iters: int,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on ``(N, D)``; empty clusters keep their previous centre. The initial
    centres are rows drawn from ``generator`` (default: torch's global generator).

    :return: centres ``(K, D)`` and cluster sizes ``(K,)``.
    """
    means = sample_rows(samples, num_clusters, generator)
    bins = torch.zeros(num_clusters, device=samples.device)
    for _ in range(iters):
        assign = torch.cdist(samples, means).argmin(dim=-1)  # (N,)
        bins = torch.bincount(assign, minlength=num_clusters).to(samples.dtype)
        sums = torch.zeros_like(means).index_add_(0, assign, samples)
        empty = bins == 0
        means = torch.where(empty[:, None], means, sums / bins.clamp_min(1)[:, None])
    return means, bins


@torch.no_grad()
def init_codebook_(codebook: nn.Module, samples: torch.Tensor, rule: CodebookLearning) -> None:
    """k-means-initialise ``codebook`` from ``samples`` ``(N, D)`` unless already inited."""
    if bool(codebook.inited.item()):
        return
    embed, sizes = kmeans(samples.float(), codebook.embed.shape[0], rule.kmeans_iters)
    codebook.embed.copy_(embed)
    codebook.embed_avg.copy_(embed)
    codebook.cluster_size.copy_(sizes)
    codebook.inited.fill_(1.0)


@torch.no_grad()
def expire_dead_codes_(codebook: nn.Module, samples: torch.Tensor, rule: CodebookLearning) -> int:
    """Re-seed entries used less than ``rule.dead_code_threshold`` (EMA count) from ``samples``.

    Run after :func:`ema_update_`: the re-seeded entries also get ``embed_avg`` and
    ``cluster_size`` consistent with their new vectors (count = threshold), so the next EMA
    step keeps them instead of recomputing them from the stale averages (the original
    implementation expires before the EMA step, which then overwrites the new entries).

    :return: the number of entries replaced.
    """
    if rule.dead_code_threshold <= 0:
        return 0
    dead = codebook.cluster_size < rule.dead_code_threshold  # (K,)
    count = int(dead.sum())
    if count:
        fresh = sample_rows(samples, count)  # (n_dead, D)
        codebook.embed[dead] = fresh
        codebook.embed_avg[dead] = fresh * rule.dead_code_threshold
        codebook.cluster_size[dead] = rule.dead_code_threshold
    return count


@torch.no_grad()
def ema_update_(codebook: nn.Module, samples: torch.Tensor, assign: torch.Tensor, rule: CodebookLearning) -> None:
    """One EMA step of ``codebook`` towards the mean of the ``samples`` ``(N, D)`` assigned to
    each entry (``assign`` ``(N,)``)."""
    size = codebook.embed.shape[0]
    onehot = F.one_hot(assign, size).to(samples.dtype)  # (N, K)
    codebook.cluster_size.mul_(rule.decay).add_(onehot.sum(0), alpha=1 - rule.decay)
    codebook.embed_avg.mul_(rule.decay).add_(onehot.t() @ samples, alpha=1 - rule.decay)
    total = codebook.cluster_size.sum()
    smoothed = (codebook.cluster_size + rule.epsilon) / (total + size * rule.epsilon) * total
    codebook.embed.copy_(codebook.embed_avg / smoothed[:, None])


def nearest(vectors: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
    """Index of the closest (Euclidean) row of ``embed`` ``(K, D)`` for each ``(..., D)`` vector."""
    flat = vectors.reshape(-1, vectors.shape[-1])  # (N, D)
    dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed.t() + embed.pow(2).sum(1)[None]  # (N, K)
    return dist.argmin(dim=-1).reshape(vectors.shape[:-1])


def residual_quantize(
    layers: nn.ModuleList, embeddings: torch.Tensor, rule: CodebookLearning, *, learn: bool
) -> QuantizedFrames:
    """Residual VQ of encoder frames with straight-through gradients.

    :param layers: transformers' ``EncodecVectorQuantization`` modules (one per codebook).
    :param embeddings: ``(B, D, S)`` encoder output.
    :param learn: apply k-means init, dead-code expiry and the EMA update (training).
    """
    b, d, s = embeddings.shape
    residual = embeddings
    quantized_sum = torch.zeros_like(embeddings)
    codes, losses = [], []
    for layer in layers:
        codebook = layer.codebook
        flat = residual.detach().permute(0, 2, 1).reshape(-1, d)  # (B*S, D)
        if learn:
            init_codebook_(codebook, flat, rule)
        assign = nearest(flat, codebook.embed)  # (B*S,)
        # vectors of the codebook as it was when assigning (the update below is for next step)
        chosen = F.embedding(assign, codebook.embed.clone()).view(b, s, d).permute(0, 2, 1)  # (B, D, S)
        if learn:
            ema_update_(codebook, flat, assign, rule)
            expire_dead_codes_(codebook, flat, rule)
        losses.append(F.mse_loss(residual, chosen.detach()))
        straight = residual + (chosen - residual).detach()
        quantized_sum = quantized_sum + straight
        residual = residual - straight
        codes.append(assign.view(b, s))
    return QuantizedFrames(
        quantized=quantized_sum,
        codes=torch.stack(codes, dim=1),
        commitment=torch.stack(losses).mean(),
    )
