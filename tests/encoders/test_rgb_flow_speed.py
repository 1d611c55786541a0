"""The fast rgb-flow path (issue 17) equals today's per-frame path within float rounding.

``rgb_flow_reference.py`` is a frozen copy of the encoder before the speed-up; both run on
small synthetic videos: constant rate above and below the feature rate (repeated source
frames), variable frame rate, a non-square source (resize + crop).
Tolerance: handcrafted 1e-5 absolute (features are O(1); seen: 2e-7); CNN 1e-4 of the
features' scale (BatchNorm folding and channels-last reorder float sums; seen: 2e-6).
"""

from __future__ import annotations

import pytest
import torch
from rgb_flow_reference import reference_encode

from c3llm.core.media import Video
from c3llm.plugins.encoders.rgb_flow import RgbFlowEncoder, RgbFlowEncoderConfig


def _moving(n: int, h: int = 40, w: int = 56, seed: int = 0) -> torch.Tensor:
    """Two coloured squares moving at different speeds over a textured background."""
    gen = torch.Generator().manual_seed(seed)
    background = (torch.rand(h, w, 3, generator=gen) * 60).to(torch.uint8)
    frames = background.expand(n, h, w, 3).clone()
    for i in range(n):
        x, y = (3 * i) % (w - 10), (i // 2) % (h - 10)
        frames[i, 4:14, x:x + 10] = torch.tensor([250, 40, 40], dtype=torch.uint8)
        frames[i, y:y + 8, 30:38] = torch.tensor([30, 200, 90], dtype=torch.uint8)
    return frames


VIDEOS = {
    "25fps": lambda: Video.from_frames(_moving(30), 25.0),
    "8fps-repeats": lambda: Video.from_frames(_moving(10), 8.0),
    "vfr": lambda: Video(_moving(12), torch.tensor([0, .03, .05, .12, .2, .21, .3, .33, .4, .5, .52, .6],
                                                    dtype=torch.float64), 0.65),
}


@pytest.mark.parametrize("video", VIDEOS)
def test_handcrafted_equals_the_reference(video):
    encoder = RgbFlowEncoder(RgbFlowEncoderConfig(frame_size=32))
    clip = VIDEOS[video]()
    new, ref = encoder.encode_one(clip), reference_encode(encoder, clip)
    assert new.shape == ref.shape and new.dtype == ref.dtype
    torch.testing.assert_close(new, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("flow_weights", [False, True])
@pytest.mark.parametrize("extractor", ["resnet10-slim", "resnet50"])
def test_cnn_equals_the_reference(extractor, flow_weights, tmp_path):
    flow_path = None
    if flow_weights:  # a separate flow network: RGB and flow no longer share forward passes
        from c3llm.plugins.encoders.frame_cnn import ResNetFeatures

        torch.manual_seed(1)
        flow_path = tmp_path / "flow.pth"
        torch.save(_perturbed_batch_norm(ResNetFeatures(extractor)).state_dict(), flow_path)
    config = RgbFlowEncoderConfig(frame_size=32, extractor=extractor, cnn_batch=7, flow_weights=flow_path)
    encoder = RgbFlowEncoder(config)
    encoder.load_pretrained()
    _perturbed_batch_norm(encoder.rgb_net)  # non-trivial BatchNorm statistics, as trained weights have
    clip = VIDEOS["8fps-repeats"]()
    new, ref = encoder.encode_one(clip), reference_encode(encoder, clip)
    assert new.shape == ref.shape
    torch.testing.assert_close(new, ref, atol=1e-4 * ref.abs().max().item(), rtol=1e-4)


def _perturbed_batch_norm(net: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                for tensor, low, high in ((m.running_mean, -.5, .5), (m.running_var, .5, 2.), (m.weight, .5, 1.5),
                                          (m.bias, -.2, .2)):
                    tensor.copy_(torch.rand(tensor.shape, generator=gen) * (high - low) + low)
    return net.eval()
