"""RGB + optical-flow encoder: rate and shape, VFR, motion timing, colour/height, ResNet weights, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from c3llm.core.errors import CheckpointError, InputError, MediaError, UnavailableError
from c3llm.core.media import Video, load_video
from c3llm.plugins.encoders import handcrafted
from c3llm.plugins.encoders.rgb_flow import RgbFlowEncoder, RgbFlowEncoderConfig
from c3llm.plugins.encoders.video_sampling import feature_times, nearest_earlier

FPS = 21.5
MAG = handcrafted.RGB_DIM + len(handcrafted.MAGNITUDE_EDGES) + 1 + handcrafted.DIRECTION_BINS + 2 * handcrafted.FLOW_GRID**2
CENTROID_Y = 3 * handcrafted.COLOUR_BINS + 3 * handcrafted.COLOUR_GRID**2 + handcrafted.LUMA_GRID**2 + handcrafted.EDGE_GRID**2


def _square_clip(seconds: float, fps: float, move=(4.0, 6.0), colour=(255, 0, 0), top=24, size=(96, 96)) -> torch.Tensor:
    """A square that slides right only while ``move[0] <= t < move[1]``."""
    n = round(seconds * fps)
    h, w = size
    frames = torch.zeros(n, h, w, 3, dtype=torch.uint8)
    for i in range(n):
        t = i / fps
        x = 8 + int(70 * (min(max(t, move[0]), move[1]) - move[0]) / (move[1] - move[0]))
        frames[i, top:top + 14, x:x + 14] = torch.tensor(colour, dtype=torch.uint8)
    return frames


@pytest.fixture(scope="module")
def encoder() -> RgbFlowEncoder:
    return RgbFlowEncoder(RgbFlowEncoderConfig(frame_size=48))


@pytest.fixture(scope="module")
def ten_second_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    return Video.from_frames(_square_clip(10.0, 25), 25).save(path)


def test_ten_second_file_rate_shape_and_motion_timing(encoder, ten_second_file):
    feats = encoder([ten_second_file])
    n = feats.embeds.shape[1]
    assert abs(n - 10 * FPS) <= 1 and feats.mask.all()
    assert feats.embeds.shape[2] == encoder.output_dim == handcrafted.RGB_DIM + handcrafted.FLOW_DIM
    assert encoder.feature_rate == FPS and encoder.flow_method in ("tvl1", "farneback")
    magnitude = feats.embeds[0, :, MAG]  # mean flow magnitude per feature frame
    t = torch.arange(n) / FPS
    moving = (t > 4.1) & (t < 5.9)
    still = (t < 3.9) | (t > 6.2)
    assert magnitude[moving].min() > 0.05
    assert magnitude[still].max() < 0.3 * magnitude[moving].mean()


def test_motion_is_rate_invariant_and_vfr_follows_timestamps(encoder):
    slow = encoder([Video.from_frames(_square_clip(8.0, 10), 10)]).embeds[0, :, MAG]
    fast = encoder([Video.from_frames(_square_clip(8.0, 30), 30)]).embeds[0, :, MAG]
    t = torch.arange(slow.numel()) / FPS
    window = (t > 4.3) & (t < 5.7)
    assert slow.shape == fast.shape == (round(8 * FPS),)
    assert torch.allclose(slow[window].mean(), fast[window].mean(), rtol=0.35)
    # variable frame rate: 30 fps for 3 s, then 10 fps; the clock follows the real times
    frames30 = _square_clip(8.0, 30)
    keep = [i for i in range(frames30.shape[0]) if i < 90 or i % 3 == 0]
    times = torch.tensor(keep, dtype=torch.float64) / 30
    vfr = Video(frames30[keep], times, 8.0)
    vfr_mag = encoder([vfr]).embeds[0, :, MAG]
    assert vfr_mag.shape == (round(8 * FPS),)
    assert torch.allclose(vfr_mag[window].mean(), fast[window].mean(), rtol=0.35)
    assert vfr_mag[t < 3.9].max() < 0.3 * vfr_mag[window].mean()


def test_sampling_takes_the_nearest_earlier_frame():
    frame_times = torch.tensor([0.0, 0.03, 0.05, 0.2, 0.21], dtype=torch.float64)
    times = feature_times(0.25, 20.0)  # 0, .05, .1, .15, .2
    assert times.numel() == 5
    assert nearest_earlier(frame_times, times).tolist() == [0, 2, 2, 2, 3]
    assert feature_times(10.0, 21.5, max_seconds=2.0).numel() == 43


def test_colour_and_height_are_told_apart(encoder):
    def feats(colour, top):
        return encoder([Video.from_frames(_square_clip(1.0, 10, colour=colour, top=top), 10)]).embeds[0, 0]

    red_high, red_low, blue_high = feats((255, 0, 0), 4), feats((255, 0, 0), 74), feats((0, 0, 255), 4)
    assert red_high[CENTROID_Y] < 0.35 < 0.65 < red_low[CENTROID_Y]
    colour = slice(0, 3 * handcrafted.COLOUR_BINS)
    assert not torch.allclose(red_high[colour], blue_high[colour])
    assert torch.allclose(red_high[CENTROID_Y], blue_high[CENTROID_Y], atol=1e-4)


def _torchvision_resnet18_keys() -> list[tuple[str, tuple[int, ...]]]:
    """torchvision.models.resnet18().state_dict() names and shapes, written out."""
    keys = [("conv1.weight", (64, 3, 7, 7))]
    bn = lambda p, c: [(f"{p}.weight", (c,)), (f"{p}.bias", (c,)), (f"{p}.running_mean", (c,)),
                       (f"{p}.running_var", (c,)), (f"{p}.num_batches_tracked", ())]
    keys += bn("bn1", 64)
    cin = 64
    for layer, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{layer}.{block}"
            first_in = cin if block == 0 else cout
            keys += [(f"{p}.conv1.weight", (cout, first_in, 3, 3))] + bn(f"{p}.bn1", cout)
            keys += [(f"{p}.conv2.weight", (cout, cout, 3, 3))] + bn(f"{p}.bn2", cout)
            if block == 0 and layer > 1:
                keys += [(f"{p}.downsample.0.weight", (cout, cin, 1, 1))] + bn(f"{p}.downsample.1", cout)
        cin = cout
    return keys + [("fc.weight", (1000, 512)), ("fc.bias", (1000,))]


def test_resnet18_loads_torchvision_layout(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in _torchvision_resnet18_keys():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(5)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = 0.05 * torch.randn(shape, generator=g)
    torch.save(state, tmp_path / "resnet18.pth")
    video = Video.from_frames(_square_clip(1.0, 10), 10)
    enc = RgbFlowEncoder(RgbFlowEncoderConfig(extractor="resnet18", frame_size=32, weights=str(tmp_path / "resnet18.pth")))
    random = enc([video]).embeds
    enc.load_pretrained()
    loaded = enc([video]).embeds
    assert loaded.shape == (1, round(1 * FPS), 1024) and enc.output_dim == 1024
    assert not torch.allclose(random, loaded)
    assert torch.equal(enc.rgb_net.layer2[0].downsample[0].weight, state["layer2.0.downsample.0.weight"])
    del state["layer1.0.conv1.weight"]
    torch.save(state, tmp_path / "broken.pth")
    bad = RgbFlowEncoder(RgbFlowEncoderConfig(extractor="resnet18", frame_size=32, weights=str(tmp_path / "broken.pth")))
    with pytest.raises(CheckpointError, match="layer1.0.conv1.weight"):
        bad.load_pretrained()
    missing = RgbFlowEncoder(RgbFlowEncoderConfig(extractor="resnet18", weights=str(tmp_path / "none.pth")))
    with pytest.raises(UnavailableError, match="does not exist"):
        missing.load_pretrained()


def test_legacy_torchvision_file_without_batch_counters_loads(tmp_path):
    """torchvision's original ImageNet files (resnet50-0676ba61.pth, resnet18-5c106cde.pth) have
    no num_batches_tracked keys; they load (counters 0), and real gaps are still refused."""
    g = torch.Generator().manual_seed(1)
    state = {name: (torch.rand(shape, generator=g) + 0.5 if name.endswith("running_var")
                    else 0.05 * torch.randn(shape, generator=g))
             for name, shape in _torchvision_resnet18_keys() if not name.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "resnet18-5c106cde.pth")
    video = Video.from_frames(_square_clip(1.0, 10), 10)
    enc = RgbFlowEncoder(RgbFlowEncoderConfig(extractor="resnet18", frame_size=32,
                                              weights=str(tmp_path / "resnet18-5c106cde.pth")))
    enc.load_pretrained()
    assert torch.equal(enc.rgb_net.bn1.running_mean, state["bn1.running_mean"])
    assert int(enc.rgb_net.layer1[0].bn1.num_batches_tracked) == 0
    assert torch.isfinite(enc([video]).embeds).all()
    del state["layer3.1.bn2.running_mean"]  # a real mismatch: refused with the usual message
    torch.save(state, tmp_path / "broken.pth")
    bad = RgbFlowEncoder(RgbFlowEncoderConfig(extractor="resnet18", frame_size=32, weights=str(tmp_path / "broken.pth")))
    with pytest.raises(CheckpointError, match=r"checkpoint does not match torchvision resnet18.*missing 2 key\(s\)"
                                              r".*layer3.1.bn2.num_batches_tracked"):
        bad.load_pretrained()


def test_bad_videos_raise_media_errors(encoder, tmp_path, ten_second_file):
    import cv2

    still = tmp_path / "still.png"
    cv2.imwrite(str(still), np.full((32, 32, 3), 128, np.uint8))
    with pytest.raises(MediaError, match="single frame"):
        encoder([still])
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError):
        encoder([corrupt])
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(ten_second_file.read_bytes()[:600])  # header only, no frame data
    with pytest.raises(MediaError):
        load_video(truncated)
    with pytest.raises(MediaError, match="not found"):
        encoder([tmp_path / "missing.mp4"])
    with pytest.raises(InputError, match="non-empty list"):
        encoder([])
    with pytest.raises(InputError, match="expected a Video"):
        encoder([np.zeros((4, 8, 8, 3))])


def test_batch_is_padded_and_masked(encoder):
    short = Video.from_frames(_square_clip(1.0, 10), 10)
    long = Video.from_frames(_square_clip(2.0, 10), 10)
    feats = encoder([short, long])
    assert feats.embeds.shape[1] == round(2 * FPS)
    assert feats.mask[0].sum() == round(FPS) and feats.mask[1].all()
    assert (feats.embeds[0, round(FPS):] == 0).all()


def test_tvl1_without_contrib_is_a_clear_error():
    from c3llm.plugins.encoders.optical_flow import OpticalFlow, tvl1_available

    if tvl1_available():
        assert OpticalFlow("tvl1").method == "tvl1"
    else:
        with pytest.raises(UnavailableError, match="opencv-contrib"):
            OpticalFlow("tvl1")


def test_both_encoders_are_registered():
    from c3llm.core.registry import get_registry

    registry = get_registry(refresh=True)
    clap = registry.build("encoder", {"name": "clap", "num_local_frames": 4})
    video = registry.build("encoder", {"name": "rgb-flow", "fps": 10.0})
    assert clap.modality == "audio" and clap.output_dim == 32
    assert video.modality == "video" and video.feature_rate == 10.0
