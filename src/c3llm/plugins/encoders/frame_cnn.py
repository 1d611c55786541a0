"""ResNet-10/18/34/50 frame feature extractors in torchvision's exact key layout.

torchvision cannot be installed beside this torch build, so the network is defined here with
the same module names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, …) and
loads a torchvision ``resnet*.pth`` file directly (``torch.load(weights_only=True)``). The
classifier ``fc`` is dropped: features are the global-average-pooled last stage. ResNet-10
(one basic block per stage) is not in torchvision, nor is ``resnet10-slim`` (a quarter of the
width: 16..128 channels, 128-d features, ~16x fewer FLOPs); they are the sizes the pretrain
stage trains on a CPU, saved in the same layout.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from c3llm.core.errors import CheckpointError
from c3llm.core.roles.base import load_strict

#: ImageNet normalisation the torchvision weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


ARCHITECTURES: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet10": (BasicBlock, (1, 1, 1, 1)),
    "resnet10-slim": (BasicBlock, (1, 1, 1, 1)),
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}
#: channels of the stem and the first stage (torchvision: 64); the stages double it
WIDTHS = {"resnet10-slim": 16}


class ResNetFeatures(nn.Module):
    """``(N, 3, H, W)`` ImageNet-normalised images -> ``(N, feature_dim)`` pooled features."""

    def __init__(self, name: str):
        super().__init__()
        block, layers = ARCHITECTURES[name]
        width = WIDTHS.get(name, 64)
        self.name = name
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._stage(block, width, layers[0], 1)
        self.layer2 = self._stage(block, 2 * width, layers[1], 2)
        self.layer3 = self._stage(block, 4 * width, layers[2], 2)
        self.layer4 = self._stage(block, 8 * width, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = 8 * width * block.expansion
        for m in self.modules():  # torchvision's init, for reproducible random-weight runs
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, block: type[nn.Module], planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, width, H/4, W/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (N, C, H/32, W/32)
        return self.avgpool(x).flatten(1)  # (N, C)

    def load_torchvision(self, path: str | Path) -> None:
        """Load a torchvision ``resnet*.pth`` state dict (its ``fc.*`` classifier is ignored)."""
        path = Path(path)
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"cannot read {self.name} weights {path}: {type(exc).__name__}: {exc}. Expected a "
                f"torchvision state dict (.pth) readable with torch.load(weights_only=True)."
            ) from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} is not a state dict")
        state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
        load_strict(self, with_batch_counters(state, self.state_dict()), owner=f"torchvision {self.name} ({path})")


def with_batch_counters(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with each missing BatchNorm ``num_batches_tracked`` filled with 0, as torch's own
    BatchNorm loader does: torchvision's original ImageNet files (``resnet50-0676ba61.pth``,
    ``resnet18-5c106cde.pth``) predate the counter, which inference never reads. Only counters
    of BatchNorms whose other tensors are in ``state`` are filled; anything else missing is
    still a mismatch."""
    filled = dict(state)
    for key in own:
        prefix = key.removesuffix("num_batches_tracked")
        if key.endswith(".num_batches_tracked") and key not in state and f"{prefix}running_mean" in state:
            filled[key] = torch.zeros((), dtype=torch.long)
    return filled


class FoldedResNet:
    """Inference form of a :class:`ResNetFeatures`: each BatchNorm folded into the conv before it
    (eval-mode BN is an affine map per channel), activations in channels-last layout (oneDNN's
    fast path on CPU). Same outputs up to float rounding, ~1.3-1.5x faster on this CPU.

    A plain object, not a module: built from the network's current weights on each call site,
    so the encoder's state dict, checkpoints and cache fingerprints are untouched.
    """

    def __init__(self, net: ResNetFeatures):
        self.stem = _fold(net.conv1, net.bn1)
        self.blocks: list[tuple[list[tuple], tuple | None]] = []
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            for block in stage:
                pairs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
                if isinstance(block, Bottleneck):
                    pairs.append((block.conv3, block.bn3))
                down = None if block.downsample is None else _fold(block.downsample[0], block.downsample[1])
                self.blocks.append(([_fold(conv, bn) for conv, bn in pairs], down))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` normalised images -> ``(N, C)``, as ``ResNetFeatures.forward``."""
        x = _conv(x.contiguous(memory_format=torch.channels_last), self.stem).relu_()
        x = F.max_pool2d(x, 3, 2, 1)  # (N, width, H/4, W/4)
        for convs, down in self.blocks:
            identity = x if down is None else _conv(x, down)
            out = x
            for conv in convs[:-1]:
                out = _conv(out, conv).relu_()
            x = _conv(out, convs[-1]).add_(identity).relu_()
        return x.mean((2, 3))  # (N, C)


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor, tuple, tuple]:
    """``bn(conv(x)) == conv'(x)`` in eval mode: ``(weight, bias, stride, padding)`` of ``conv'``."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    weight = (conv.weight * scale[:, None, None, None]).contiguous(memory_format=torch.channels_last)
    return weight, bn.bias - bn.running_mean * scale, conv.stride, conv.padding


def _conv(x: torch.Tensor, folded: tuple) -> torch.Tensor:
    weight, bias, stride, padding = folded
    return F.conv2d(x, weight, bias, stride, padding)
