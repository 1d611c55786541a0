"""Today's (pre-issue-17) rgb-flow feature path, frozen: the reference the fast path must equal.

A verbatim copy of ``RgbFlowEncoder.encode_one`` / ``_cnn`` / ``_flow_image`` and of the
handcrafted descriptors as they were before the speed-up (per-frame Python loops, one flow per
frame pair, RGB and flow through the CNN separately in ``cnn_batch`` chunks). Used by
``test_rgb_flow_speed.py`` (equality within tolerance) and by ``benchmarks/encoder_features.py
--reference`` (before/after in one run). Do not optimise this file.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from c3llm.core.errors import MediaError
from c3llm.plugins.encoders.frame_cnn import IMAGENET_MEAN, IMAGENET_STD
from c3llm.plugins.encoders.optical_flow import OpticalFlow
from c3llm.plugins.encoders.video_sampling import feature_times, nearest_earlier

FLOW_IMAGE_BOUND = 20.0
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
    edges = grad.norm(dim=1, keepdim=True)  # (N, 1, S, S)
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
    magnitude = flow.norm(dim=1)  # (N, S, S)
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


def reference_encode(encoder, video) -> torch.Tensor:
    """``encoder.encode_one(video)`` as computed before the speed-up."""
    config = encoder.config
    flow_fn = OpticalFlow(config.flow)
    times = feature_times(video.duration, config.fps, config.max_seconds)  # (N,)
    source = nearest_earlier(video.times, times)  # (N,) indices into video.frames
    wanted = sorted(set(source.tolist()) | {max(s - 1, 0) for s in source.tolist()})
    grey, rgb = {}, {}
    for s in wanted:
        image = _square(video.frames[s].numpy(), config.frame_size)  # (S, S, 3) uint8
        rgb[s] = image
        grey[s] = _grey(image)
    flows, differences = {}, {}
    for s in set(source.tolist()):
        if s == 0:
            size = config.frame_size
            flows[s], differences[s] = np.zeros((size, size, 2), np.float32), 0.0
            continue
        dt = float(video.times[s] - video.times[s - 1])
        if not dt > 0:
            raise MediaError(f"video timestamps are not increasing at frame {s} ({float(video.times[s]):.4f} s)")
        scale = (1.0 / config.fps) / dt
        flows[s] = flow_fn(grey[s - 1], grey[s]) * scale
        differences[s] = float(np.abs(grey[s].astype(np.float32) - grey[s - 1]).mean() / 255.0)
    order = source.tolist()
    frames = torch.from_numpy(np.stack([rgb[s] for s in order])).permute(0, 3, 1, 2).float() / 255  # (N, 3, S, S)
    flow = torch.from_numpy(np.stack([flows[s] for s in order])).permute(0, 3, 1, 2)  # (N, 2, S, S)
    difference = torch.tensor([differences[s] for s in order])  # (N,)
    if encoder.rgb_net is None:
        return torch.cat([rgb_features(frames), flow_features(flow, difference)], 1)
    return torch.cat([_cnn(encoder.rgb_net, frames, config.cnn_batch),
                      _cnn(encoder.flow_net or encoder.rgb_net, _flow_image(flow), config.cnn_batch)], 1)


def _cnn(net, images, batch):
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch):
            out.append(net((images[start:start + batch] - mean) / std))
    return torch.cat(out)


def _square(frame: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(resized[top:top + size, left:left + size])


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _flow_image(flow: torch.Tensor) -> torch.Tensor:
    bounded = flow.clamp(-FLOW_IMAGE_BOUND, FLOW_IMAGE_BOUND) / (2 * FLOW_IMAGE_BOUND) + 0.5
    magnitude = (flow.norm(dim=1, keepdim=True) / FLOW_IMAGE_BOUND).clamp(max=1.0)
    return torch.cat([bounded, magnitude], dim=1)
