"""Pretraining the video encoder's frame CNNs on foundation video, supervised by the events.

Two networks of the ``rgb-flow`` encoder's CNN architecture (built through the registry), as
SpecVQGAN's features had an RGB and a flow network:

- RGB: each frame -> the event kinds showing (multi-label) and the pitch class of the loudest
  object (none / low / mid / high);
- flow: the flow image of each frame (optical flow from the previous frame, drawn as the
  encoder draws it) -> an onset since the previous frame, and the kinds showing.

Each is saved as a torchvision-style state dict (``torch.save``; ``fc`` = its first head),
``resnet10-rgb.pth`` and ``resnet10-flow.pth``, which ``video_encoder.weights`` /
``flow_weights`` load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from c3llm.app.foundation.corpus import KINDS
from c3llm.app.foundation.dataset import FoundationCorpus
from c3llm.app.pretrain.lm import RowSampler, _mean
from c3llm.app.pretrain.settings import VideoPretrainConfig
from c3llm.app.training.loop import Trainer
from c3llm.core.errors import ConfigError, PluginError
from c3llm.core.progress import progress_bar

log = logging.getLogger(__name__)

#: the encoder's input normalisation (torchvision's ImageNet statistics) and flow bound (px)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FLOW_IMAGE_BOUND = 20.0
K = len(KINDS)


def build_video_encoder(registry, config: VideoPretrainConfig):
    """The rgb-flow encoder of ``config.encoder``; its ``.rgb_net`` architecture is pretrained."""
    spec = dict(config.encoder)
    if spec.get("weights") or spec.get("flow_weights"):
        raise ConfigError("pretrain.video.encoder must not load weights (weights / flow_weights): the pretrain "
                          "stage makes them")
    encoder = registry.build("encoder", spec, where="pretrain.video.encoder")
    if not isinstance(getattr(encoder, "rgb_net", None), nn.Module):
        raise ConfigError(f"pretrain.video.encoder: extractor {spec.get('extractor', 'handcrafted')!r} has no CNN to "
                          "pretrain; set extractor = \"resnet10\" (or another resnet)")
    if not hasattr(encoder.rgb_net, "feature_dim") or not hasattr(encoder.rgb_net, "name"):
        raise PluginError("pretrain.video: the encoder's rgb_net is not a torchvision-layout ResNet")
    return encoder


def flow_images(frames: torch.Tensor, *, scale: float = 1.0, progress: bool = True) -> torch.Tensor:
    """``(V, F, S, S, 3)`` uint8 frames -> ``(V, F, 3, S, S)`` uint8 flow images (dx, dy around
    128, magnitude), Farnebäck flow from the previous frame (zero for frame 0) times ``scale``."""
    import cv2

    v, f, s = frames.shape[:3]
    out = np.zeros((v, f, 3, s, s), np.uint8)
    with progress_bar(v, "flow images", unit="video", enabled=progress) as bar:
        for i in range(v):
            grey = [cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2GRAY) for x in frames[i].numpy()]
            flows = [np.zeros((s, s, 2), np.float32)] + [
                cv2.calcOpticalFlowFarneback(grey[k - 1], grey[k], None, pyr_scale=0.5, levels=3, winsize=15,
                                             iterations=3, poly_n=5, poly_sigma=1.2, flags=0) * scale
                for k in range(1, f)]
            flow = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2)  # (F, 2, S, S)
            bounded = flow.clamp(-FLOW_IMAGE_BOUND, FLOW_IMAGE_BOUND) / (2 * FLOW_IMAGE_BOUND) + 0.5
            magnitude = (flow.norm(dim=1, keepdim=True) / FLOW_IMAGE_BOUND).clamp(max=1.0)
            out[i] = (torch.cat([bounded, magnitude], 1) * 255).round().byte().numpy()
            bar.update()
    return torch.from_numpy(out)


def _normalise(images: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, 3, S, S)`` uint8 -> float, resized to ``size``, ImageNet-normalised."""
    x = images.float() / 255
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return (x - mean) / std


class FrameObjective(nn.Module):
    """RGB net: kinds (BCE) + pitch class (CE); flow net: onset + kinds (BCE)."""

    def __init__(self, rgb_net: nn.Module, flow_net: nn.Module, size: int):
        super().__init__()
        self.rgb_net, self.flow_net, self.size = rgb_net, flow_net, size
        dim = rgb_net.feature_dim
        self.rgb_head = nn.Linear(dim, K + 4)  # kinds, pitch class
        self.flow_head = nn.Linear(dim, 1 + K)  # onset, kinds

    def forward(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        rgb, flow, labels = batch  # (B, 3, S, S) uint8, (B, 3, S, S) uint8, (B, K + 1 + 4)
        kinds, onset, pitch = labels[:, :K], labels[:, K:K + 1], labels[:, K + 1:].argmax(1)
        a = self.rgb_head(self.rgb_net(_normalise(rgb, self.size)))  # (B, K + 4)
        b = self.flow_head(self.flow_net(_normalise(flow, self.size)))  # (B, 1 + K)
        losses = {"kinds": F.binary_cross_entropy_with_logits(a[:, :K], kinds),
                  "pitch": F.cross_entropy(a[:, K:], pitch),
                  "onset": F.binary_cross_entropy_with_logits(b[:, :1], onset),
                  "flow_kinds": F.binary_cross_entropy_with_logits(b[:, 1:], kinds)}
        loss = sum(losses.values())
        logs = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in losses.items()}}
        return loss, logs

    @torch.no_grad()
    def evaluate(self, rgb: torch.Tensor, flow: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Held-out accuracies: per-kind (binary, mean), pitch class, onset; with their base rates."""
        self.eval()
        a = torch.cat([self.rgb_head(self.rgb_net(_normalise(x, self.size))) for x in rgb.split(64)])
        b = torch.cat([self.flow_head(self.flow_net(_normalise(x, self.size))) for x in flow.split(64)])
        kinds, onset, pitch = labels[:, :K], labels[:, K], labels[:, K + 1:].argmax(1)
        return {"kind_acc": float(((a[:, :K] > 0).float() == kinds).float().mean()),
                "kind_base": float(torch.maximum(kinds.mean(0), 1 - kinds.mean(0)).mean()),
                "pitch_acc": float((a[:, K:].argmax(1) == pitch).float().mean()),
                "pitch_base": float(torch.bincount(pitch, minlength=4).max() / len(pitch)),
                "onset_acc": float(((b[:, 0] > 0).float() == onset).float().mean()),
                "onset_base": float(max(onset.mean(), 1 - onset.mean()))}


def torchvision_state(net: nn.Module, head: nn.Linear, rows: int) -> dict[str, torch.Tensor]:
    """The net's state dict with ``fc`` = the first ``rows`` outputs of ``head`` (torchvision layout)."""
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    state["fc.weight"] = head.weight[:rows].detach().clone()
    state["fc.bias"] = head.bias[:rows].detach().clone()
    return state


def pretrain_video(registry, config: VideoPretrainConfig, corpus: FoundationCorpus, out_dir: Path, work_dir: Path,
                   *, held_out: int = 0, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Train both nets on the corpus videos (all but the last ``held_out``) and write the ``.pth`` files."""
    videos = corpus.frames.shape[0]
    if videos - held_out < 1:
        raise ConfigError(f"pretrain.video needs video clips: pretrain.corpus.video_clips = {videos} "
                          f"(held out {held_out}); raise it")
    torch.manual_seed(seed)
    encoder = build_video_encoder(registry, config)
    name, size = encoder.rgb_net.name, encoder.config.frame_size
    flow_net = type(encoder.rgb_net)(name)
    scale = corpus.config.fps / encoder.config.fps  # pixels per corpus frame -> per feature frame
    flows = flow_images(corpus.frames, scale=scale, progress=progress)  # (V, F, 3, S, S)
    rgb = corpus.frames.permute(0, 1, 4, 2, 3)  # (V, F, 3, S, S)
    split = videos - held_out
    train = [t[:split].flatten(0, 1) for t in (rgb, flows, corpus.frame_labels)]
    objective = FrameObjective(encoder.rgb_net, flow_net, size)
    objective.requires_grad_(True)
    log.info("pretrain video: %d frames of %d videos, two %s nets of %d parameters", train[0].shape[0], split, name,
             sum(p.numel() for p in flow_net.parameters()))
    history = Trainer(objective, RowSampler(train, config.train.batch_size, seed), config.train, work_dir,
                      name="pretrain-video", seed=seed, progress=progress).run()
    objective.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision_state(encoder.rgb_net, objective.rgb_head, K), out_dir / f"{name}-rgb.pth")
    torch.save(torchvision_state(flow_net, objective.flow_head, 1 + K), out_dir / f"{name}-flow.pth")
    report = {"frames": train[0].shape[0], "steps": config.train.steps, "loss_first": _mean(history[:20]),
              "loss_last": _mean(history[-20:]), "rgb_weights": f"{name}-rgb.pth", "flow_weights": f"{name}-flow.pth"}
    if held_out:
        report["held_out"] = {k: round(v, 4) for k, v in objective.evaluate(
            *[t[split:].flatten(0, 1) for t in (rgb, flows, corpus.frame_labels)]).items()}
        log.info("pretrain video: held-out %s", report["held_out"])
    return report
