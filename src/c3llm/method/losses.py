"""Training losses: the LM's next-token loss on the target span (paper eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from c3llm.method.sequence import IGNORE, Batch, positions


def lm_token_losses(backbone, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-target-token cross-entropy ``(M,)`` and the batch row of each token ``(M,)``."""
    out = backbone(batch.embeds, batch.mask, position_ids=positions(batch.mask))
    hidden = out.hidden[:, :-1]  # (B, T-1, D): position t predicts token t+1
    labels = batch.labels[:, 1:]  # (B, T-1)
    select = labels != IGNORE
    rows = torch.arange(labels.shape[0], device=labels.device)[:, None].expand_as(labels)[select]
    if not bool(select.any()):
        return hidden.sum() * 0.0 + hidden.new_zeros(0), rows
    logits = backbone.logits(hidden[select][None])[0]  # (M, V)
    return F.cross_entropy(logits.float(), labels[select], reduction="none"), rows


def lm_loss(backbone, batch: Batch) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over target positions only.

    Logits are computed only where a target follows, so a large vocabulary costs
    ``(#targets, V)`` memory rather than ``(B, T, V)``.

    :return: (loss, number of target tokens).
    """
    out = backbone(batch.embeds, batch.mask, position_ids=positions(batch.mask))
    hidden = out.hidden[:, :-1]  # (B, T-1, D): position t predicts token t+1
    labels = batch.labels[:, 1:]  # (B, T-1)
    select = labels != IGNORE
    count = int(select.sum())
    if count == 0:
        return hidden.sum() * 0.0, 0
    logits = backbone.logits(hidden[select][None])[0]  # (M, V)
    return F.cross_entropy(logits.float(), labels[select]), count
