"""RGB + optical-flow video encoder: per-frame features on the audio's clock (SpecVQGAN style).

For each feature frame ``i`` (time ``i / fps``, ``N = round(duration * fps)``):

1. the nearest earlier decoded frame is taken (:mod:`.video_sampling`), resized on its short
   side and centre-cropped to ``frame_size``;
2. optical flow (:mod:`.optical_flow`) is computed between that source frame and the source
   frame just before it, then rescaled from "pixels per source frame interval" to "pixels per
   feature frame", so a 10 fps, a 60 fps and a variable-rate video give the same motion values
   (frame 0 of a video has no predecessor: zero flow);
3. RGB and flow features are extracted with ``extractor`` and concatenated:
   ``(N, D_rgb + D_flow)``.

Backbones: ``"handcrafted"`` (weight-free, :mod:`.handcrafted`) or a torchvision-layout ResNet
(:mod:`.frame_cnn`) with weights from ``weights``; flow enters the CNN as a 3-channel image
(dx, dy, magnitude, clipped at ±20 px like TSN/I3D flow JPEGs), through ``flow_weights`` when
given (a flow-trained network) or the RGB weights otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import attrs
import numpy as np
import torch

from c3llm.core.config import field, in_range, one_of
from c3llm.core.errors import InputError, MediaError, UnavailableError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.media import Video, load_video
from c3llm.core.roles.encoder import Encoder, Features
from c3llm.plugins.encoders import handcrafted
from c3llm.plugins.encoders.video_sampling import feature_times, nearest_earlier

log = logging.getLogger(__name__)

EXTRACTORS = ("handcrafted", "resnet10-slim", "resnet10", "resnet18", "resnet34", "resnet50")
#: Flow is clipped at this displacement (pixels per feature frame) when drawn as an image.
FLOW_IMAGE_BOUND = 20.0


@attrs.frozen(kw_only=True)
class RgbFlowEncoderConfig:
    """Config of the RGB + optical-flow video encoder."""

    fps: float = field(21.5, help="feature frames per second (SpecVQGAN: 21.5)", validator=in_range(0, 240, low_open=True))
    frame_size: int = field(112, help="square side (pixels) frames are resized and centre-cropped to",
                            validator=in_range(16, 1024))
    extractor: Literal["handcrafted", "resnet10-slim", "resnet10", "resnet18", "resnet34", "resnet50"] = field(
        "handcrafted", help="per-frame feature extractor (an ImageNet-style CNN, or weight-free features)",
        validator=one_of(*EXTRACTORS), aliases=("backbone",),
    )
    weights: str | None = field(None, path=True, help="torchvision resnet*.pth for the CNN extractor (RGB stream)")
    flow_weights: str | None = field(
        None, path=True, help="torchvision-layout weights for the flow stream (default: the RGB weights)",
    )
    flow: Literal["auto", "tvl1", "farneback"] = field(
        "auto", help="optical flow: TV-L1 (needs opencv-contrib), Farnebäck, or the best present",
        validator=one_of("auto", "tvl1", "farneback"),
    )
    max_seconds: float = field(30.0, help="longer videos are cut to this many seconds", validator=in_range(0, None, low_open=True))
    cnn_batch: int = field(32, help="frames per CNN forward pass", validator=in_range(1, 4096))
    init_seed: int = field(0, help="seed of the CNN's random init when no weights are given")

    def __attrs_post_init__(self) -> None:
        if self.extractor == "handcrafted" and (self.weights or self.flow_weights):
            raise ValueError("extractor='handcrafted' takes no weights; set extractor to a resnet or drop weights")


class RgbFlowEncoder(Encoder):
    """``forward(list[Video | path]) -> Features (B, N, D_rgb + D_flow)`` at ``fps`` frames/s."""

    modality: ClassVar[str] = "video"

    def __init__(self, config: RgbFlowEncoderConfig):
        super().__init__()
        self.config = config
        self.feature_rate = config.fps
        if config.extractor == "handcrafted":
            self.rgb_net = self.flow_net = None
            self.rgb_dim, self.flow_dim = handcrafted.RGB_DIM, handcrafted.FLOW_DIM
        else:
            from c3llm.plugins.encoders.frame_cnn import ResNetFeatures

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.init_seed)
                self.rgb_net = ResNetFeatures(config.extractor)
                self.flow_net = ResNetFeatures(config.extractor) if config.flow_weights else None
            for net in (self.rgb_net, self.flow_net):
                if net is not None:
                    net.requires_grad_(False).eval()
            self.rgb_dim = self.flow_dim = self.rgb_net.feature_dim
        self.output_dim = self.rgb_dim + self.flow_dim
        self._flow = None  # OpticalFlow, built on first use (it logs which method runs)

    def train(self, mode: bool = True) -> RgbFlowEncoder:
        """The frame CNNs stay in eval mode (frozen batch norm)."""
        super().train(mode)
        for net in (self.rgb_net, self.flow_net):
            if net is not None:
                net.eval()
        return self

    def load_pretrained(self) -> None:
        """Load torchvision weights for the CNN streams; the handcrafted extractor has none."""
        for net, path, key in ((self.rgb_net, self.config.weights, "weights"),
                               (self.flow_net, self.config.flow_weights, "flow_weights")):
            if net is None or path is None:
                continue
            if not Path(path).is_file():
                raise UnavailableError(
                    f"encoder.{key} = {path!r} does not exist; point it at a torchvision "
                    f"{self.config.extractor}.pth state dict (torchvision cannot be downloaded here)."
                )
            net.load_torchvision(path)
            log.info("%s stream: %s weights from %s", key, self.config.extractor, path)
        if self.rgb_net is not None and self.config.weights is None:
            log.warning("extractor %s has random weights (video_encoder.weights unset)", self.config.extractor)
        elif self.rgb_net is not None and (self.flow_net is None or self.config.flow_weights is not None):
            self.mark_loaded()  # every CNN from a file: a saved pipeline records the paths, not the weights

    @property
    def flow_method(self) -> str:
        return self._optical_flow().method

    def _optical_flow(self):
        if self._flow is None:
            from c3llm.plugins.encoders.optical_flow import OpticalFlow

            self._flow = OpticalFlow(self.config.flow)
        return self._flow

    # -- encoding -----------------------------------------------------------------------------

    def forward(self, media: Sequence[Video | str | Path]) -> Features:
        """Encode a batch; shorter videos are zero-padded and masked."""
        if isinstance(media, (Video, str, Path)) or not isinstance(media, Sequence) or len(media) == 0:
            raise InputError("the rgb-flow encoder takes a non-empty list of Video objects or video paths")
        clips = [self.encode_one(self._as_video(item, i)) for i, item in enumerate(media)]
        return Features.from_rows(clips, self.output_dim)

    def _as_video(self, item: Video | str | Path, index: int) -> Video:
        if isinstance(item, Video):
            return item
        if isinstance(item, (str, Path)):
            return load_video(item)
        raise InputError(f"item {index} is {type(item).__name__}, expected a Video or a video file path")

    def encode_one(self, video: Video) -> torch.Tensor:
        """One video -> ``(N, D_rgb + D_flow)`` float32, frame ``i`` at ``i / fps`` seconds.

        Each distinct source frame is resized, differenced and encoded once (a 15 fps video on a
        21.5 fps clock repeats frames), flow pairs run on the torch thread count's worth of
        threads, and one CNN serves RGB and flow images in the same forward passes.
        """
        times = feature_times(video.duration, self.config.fps, self.config.max_seconds)  # (N,)
        source = nearest_earlier(video.times, times)  # (N,) indices into video.frames
        unique, inverse = torch.unique(source, sorted=True, return_inverse=True)  # (U,), (N,)
        frames, flow, difference = self._frames_and_flow(video, unique.numpy())
        if self.rgb_net is None:
            features = torch.cat([handcrafted.rgb_features(frames), handcrafted.flow_features(flow, difference)], 1)
        else:
            features = self._cnn_features(frames, flow)
        return features[inverse]  # (N, D)

    def _frames_and_flow(self, video: Video, source: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sorted distinct source frames ``(U,)`` -> RGB ``(U, 3, S, S)`` in [0, 1], flow
        ``(U, 2, S, S)`` in pixels per feature frame, frame difference ``(U,)``."""
        size = self.config.frame_size
        previous = np.maximum(source - 1, 0)
        needed = np.union1d(source, previous)  # (F,) sorted decoded-frame indices
        squares = np.stack([_square(video.frames[s].numpy(), size) for s in needed])  # (F, S, S, 3)
        grey = _grey(squares.reshape(-1, size, 3)).reshape(-1, size, size)  # (F, S, S), one cvtColor call
        at, before = np.searchsorted(needed, source), np.searchsorted(needed, previous)
        moving = source > 0  # frame 0 has no predecessor: zero flow
        stamps = video.times.to(torch.float64).numpy()
        dt = stamps[source[moving]] - stamps[source[moving] - 1]  # (P,)
        if not (dt > 0).all():
            bad = int(source[moving][np.argmin(dt > 0)])
            raise MediaError(f"video timestamps are not increasing at frame {bad} ({stamps[bad]:.4f} s)")
        scale = ((1.0 / self.config.fps) / dt).astype(np.float32)  # pixels per source interval -> per feature frame
        flow = np.zeros((len(source), size, size, 2), np.float32)
        workers = min(torch.get_num_threads(), os.cpu_count() or 1)
        flow[moving] = self._optical_flow().many(grey[before[moving]], grey[at[moving]], workers=workers)
        flow[moving] *= scale[:, None, None, None]
        change = np.abs(grey[at].astype(np.float32) - grey[before]).mean((1, 2)).astype(np.float64) / 255.0
        change[~moving] = 0.0
        frames = torch.from_numpy(squares[at]).permute(0, 3, 1, 2).float() / 255  # (U, 3, S, S), channels-last memory
        return frames, torch.from_numpy(flow).permute(0, 3, 1, 2), torch.from_numpy(change).float()

    def _cnn_features(self, frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """``(U, 3, S, S)`` RGB and ``(U, 2, S, S)`` flow -> ``(U, D_rgb + D_flow)``."""
        images = _flow_image(flow)
        if self.flow_net is None:  # one network: RGB and flow images share the forward passes
            both = self._cnn(self.rgb_net, torch.cat([frames, images]))
            return torch.cat([both[:len(frames)], both[len(frames):]], 1)
        return torch.cat([self._cnn(self.rgb_net, frames), self._cnn(self.flow_net, images)], 1)

    def _cnn(self, net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` in [0, 1] -> ``(N, C)`` with ImageNet normalisation, in chunks,
        through the BatchNorm-folded channels-last form of ``net``."""
        from c3llm.plugins.encoders.frame_cnn import (
            IMAGENET_MEAN,
            IMAGENET_STD,
            FoldedResNet,
        )

        mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(IMAGENET_STD)[:, None, None]
        out = []
        with torch.no_grad():
            folded = FoldedResNet(net)
            for start in range(0, images.shape[0], self.config.cnn_batch):
                out.append(folded((images[start:start + self.config.cnn_batch] - mean) / std))
        return torch.cat(out)


def _square(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(H, W, 3)`` so the short side is ``size``, then centre-crop to ``(size, size, 3)``."""
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
    """``(N, 2, S, S)`` flow -> ``(N, 3, S, S)`` image in [0, 1]: dx, dy around 0.5, magnitude."""
    bounded = flow.clamp(-FLOW_IMAGE_BOUND, FLOW_IMAGE_BOUND) / (2 * FLOW_IMAGE_BOUND) + 0.5
    magnitude = (handcrafted.norm2(flow)[:, None] / FLOW_IMAGE_BOUND).clamp(max=1.0)
    return torch.cat([bounded, magnitude], dim=1)


@hookimpl
def register_encoders(register):
    register(
        "rgb-flow", RgbFlowEncoder, RgbFlowEncoderConfig,
        description="per-frame RGB + optical-flow video features at a fixed rate (handcrafted or ResNet)",
    )
