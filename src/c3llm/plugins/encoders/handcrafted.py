"""Weight-free per-frame video features: colour, shape/position and motion.

Deterministic descriptors a small model can learn from when no pretrained CNN is available
(the embedded world): *what* is in view (colour histograms, mean colour per grid cell), *where*
and *what shape* (luminance and edge grids, the salient region's centroid, so the height of a
source, e.g. mapped to pitch, is one number) and *when it moves* (flow magnitude and direction
histograms, mean flow per grid cell, frame-difference energy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

COLOUR_BINS = 8
COLOUR_GRID = 4
LUMA_GRID = 8
EDGE_GRID = 4
FLOW_GRID = 4
#: Flow magnitude bin edges in pixels per feature frame (log-spaced; the last bin is open).
MAGNITUDE_EDGES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
DIRECTION_BINS = 8

RGB_DIM = 3 * COLOUR_BINS + 3 * COLOUR_GRID**2 + LUMA_GRID**2 + EDGE_GRID**2 + 4
FLOW_DIM = len(MAGNITUDE_EDGES) + 1 + DIRECTION_BINS + 2 * FLOW_GRID**2 + 4


def rgb_features(frames: torch.Tensor) -> torch.Tensor:
    """``(N, 3, S, S)`` float RGB in [0, 1] -> ``(N, RGB_DIM)``."""
    bins = (frames * COLOUR_BINS).long().clamp(0, COLOUR_BINS - 1).flatten(2)  # (N, 3, S*S)
    hist = _histogram(bins.flatten(0, 1), COLOUR_BINS).view(frames.shape[0], -1)  # (N, 3*bins)
    colour_grid = F.adaptive_avg_pool2d(frames, COLOUR_GRID).flatten(1)  # (N, 3*g*g)
    luma = (0.299 * frames[:, 0] + 0.587 * frames[:, 1] + 0.114 * frames[:, 2])[:, None]  # (N, 1, S, S)
    luma_grid = F.adaptive_avg_pool2d(luma, LUMA_GRID).flatten(1)  # (N, g*g)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel, sobel.T])[:, None]  # (2, 1, 3, 3)
    grad = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), kernels)  # (N, 2, S, S)
    edges = norm2(grad)[:, None]  # (N, 1, S, S)
    edge_grid = F.adaptive_avg_pool2d(edges, EDGE_GRID).flatten(1)  # (N, g*g)
    # Salient mass: distance from the frame's median colour (the background, in simple scenes).
    background = frames.flatten(2).median(dim=2).values[:, :, None, None]  # (N, 3, 1, 1)
    salient = (frames - background).abs().sum(1)  # (N, S, S)
    centroid_y, centroid_x, spread_y = _centroid(salient)
    mass = salient.mean((1, 2))
    shape = torch.stack([centroid_y, centroid_x, spread_y, mass], dim=1)  # (N, 4)
    return torch.cat([hist, colour_grid, luma_grid, edge_grid, shape], dim=1)


def flow_features(flow: torch.Tensor, difference: torch.Tensor) -> torch.Tensor:
    """Motion descriptors.

    :param flow: ``(N, 2, S, S)`` (dx, dy) in pixels per feature frame.
    :param difference: ``(N,)`` mean absolute luminance change between the two frames, in [0, 1].
    :return: ``(N, FLOW_DIM)``.
    """
    magnitude = norm2(flow)  # (N, S, S)
    edges = torch.tensor(MAGNITUDE_EDGES, dtype=flow.dtype)
    mag_bins = torch.bucketize(magnitude, edges).flatten(1)  # (N, S*S)
    mag_hist = _histogram(mag_bins, len(MAGNITUDE_EDGES) + 1)  # (N, bins)
    angle = torch.atan2(flow[:, 1], flow[:, 0])  # (N, S, S) in [-pi, pi]
    dir_bins = ((angle + torch.pi) / (2 * torch.pi) * DIRECTION_BINS).long().clamp(0, DIRECTION_BINS - 1)
    weights = magnitude.flatten(1)  # (N, S*S)
    dir_hist = torch.zeros(flow.shape[0], DIRECTION_BINS, dtype=flow.dtype)
    dir_hist.scatter_add_(1, dir_bins.flatten(1), weights)
    dir_hist = dir_hist / weights.shape[1]  # mean magnitude per direction
    flow_grid = F.adaptive_avg_pool2d(flow, FLOW_GRID).flatten(1)  # (N, 2*g*g)
    centroid_y, centroid_x, _ = _centroid(magnitude)
    summary = torch.stack([magnitude.mean((1, 2)), centroid_y, centroid_x, difference.to(flow.dtype)], dim=1)
    return torch.cat([mag_hist, dir_hist, flow_grid, summary], dim=1)


def norm2(pair: torch.Tensor) -> torch.Tensor:
    """``(N, 2, H, W)`` -> ``(N, H, W)`` Euclidean length of the two channels: elementwise, ~10x
    faster than ``Tensor.norm(dim=1)``'s reduction kernel on these shapes (equal to float rounding)."""
    x, y = pair[:, 0], pair[:, 1]
    return torch.sqrt(x * x + y * y)


def _histogram(bins: torch.Tensor, count: int) -> torch.Tensor:
    """Row-wise normalised histogram of ``(R, K)`` integer bin ids in [0, count) -> ``(R, count)``."""
    rows = bins.shape[0]
    offsets = bins + torch.arange(rows)[:, None] * count
    return torch.bincount(offsets.flatten(), minlength=rows * count).view(rows, count).float() / bins.shape[1]


def _centroid(mass: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre (y, x in [0, 1], 0 = top/left) and vertical spread of ``(N, H, W)`` mass; 0.5 when empty."""
    n, h, w = mass.shape
    ys = (torch.arange(h, dtype=mass.dtype) + 0.5) / h
    xs = (torch.arange(w, dtype=mass.dtype) + 0.5) / w
    total = mass.sum((1, 2))  # (N,)
    empty = total < eps
    safe = total.clamp_min(eps)
    cy = (mass.sum(2) * ys).sum(1) / safe
    cx = (mass.sum(1) * xs).sum(1) / safe
    spread = ((mass.sum(2) * (ys[None] - cy[:, None]) ** 2).sum(1) / safe).sqrt()
    half = torch.full_like(cy, 0.5)
    return torch.where(empty, half, cy), torch.where(empty, half, cx), torch.where(empty, torch.zeros_like(spread), spread)
