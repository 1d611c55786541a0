"""The pretrain stage's frame CNNs: the supervised loss falls, the .pth files load through the
rgb-flow encoder plugin with the same outputs, and training flow images are the encoder's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from c3llm.app.foundation.dataset import FoundationDataConfig, read_corpus, write_corpus
from c3llm.app.pretrain.settings import VideoPretrainConfig
from c3llm.app.pretrain.video import (
    FrameObjective,
    _normalise,
    flow_images,
    pretrain_video,
)
from c3llm.app.training.loop import OptimConfig
from c3llm.core.errors import ConfigError
from c3llm.core.registry import get_registry

ENCODER = {"name": "rgb-flow", "extractor": "resnet10-slim", "fps": 8.0, "frame_size": 32}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    data = FoundationDataConfig(clips=8, seconds=2.0, video_clips=8, fps=8.0, frame_size=32, captions_per_clip=1)
    write_corpus(data, folder / "corpus", progress=False)
    return read_corpus(folder / "corpus", data), folder


def test_video_loss_falls_and_weights_load_through_the_encoder(corpus, monkeypatch):
    data, folder = corpus
    kept = {}
    original = FrameObjective.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        kept["objective"] = self

    monkeypatch.setattr(FrameObjective, "__init__", keep)
    config = VideoPretrainConfig(encoder=ENCODER, train=OptimConfig(steps=30, batch_size=16, lr=3e-3, warmup_steps=2,
                                                                    log_every=5, tensorboard=False))
    report = pretrain_video(get_registry(), config, data, folder / "out", folder / "work", held_out=2, progress=False)
    assert report["loss_last"] < report["loss_first"] - 0.3, report
    assert set(report["held_out"]) >= {"kind_acc", "pitch_acc", "onset_acc"}
    encoder = get_registry().build("encoder", {**ENCODER, "weights": str(folder / "out" / report["rgb_weights"]),
                                               "flow_weights": str(folder / "out" / report["flow_weights"])})
    encoder.load_pretrained()
    objective = kept["objective"].eval()
    images = _normalise(data.frames[0].permute(0, 3, 1, 2), 32)  # (F, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(encoder.rgb_net(images), objective.rgb_net(images))
        torch.testing.assert_close(encoder.flow_net(images), objective.flow_net(images))
    from c3llm.core.media import Video

    video = Video(frames=data.frames[0], times=torch.arange(16, dtype=torch.float64) / 8.0, duration=2.0)
    features = encoder([video])
    assert features.embeds.shape == (1, 16, 2 * encoder.rgb_net.feature_dim)


def test_training_flow_images_are_the_encoders(corpus):
    from c3llm.plugins.encoders.optical_flow import OpticalFlow
    from c3llm.plugins.encoders.rgb_flow import _flow_image, _grey

    data, _ = corpus
    ours = flow_images(data.frames[:1], progress=False)[0, 5].float() / 255  # (3, S, S)
    frames = data.frames[0].numpy()
    flow = OpticalFlow("farneback")(_grey(frames[4]), _grey(frames[5]))
    theirs = _flow_image(torch.from_numpy(flow).permute(2, 0, 1)[None])[0]
    torch.testing.assert_close(ours, theirs, atol=1 / 255 + 1e-6, rtol=0)


def test_imagenet_constants_match_the_plugin():
    from c3llm.app.pretrain import video
    from c3llm.plugins.encoders import frame_cnn, rgb_flow

    assert (video.IMAGENET_MEAN, video.IMAGENET_STD) == (frame_cnn.IMAGENET_MEAN, frame_cnn.IMAGENET_STD)
    assert video.FLOW_IMAGE_BOUND == rgb_flow.FLOW_IMAGE_BOUND


def test_a_weight_free_extractor_is_refused(corpus, tmp_path):
    data, _ = corpus
    config = VideoPretrainConfig(encoder={"name": "rgb-flow", "extractor": "handcrafted"})
    with pytest.raises(ConfigError, match="no CNN to pretrain"):
        pretrain_video(get_registry(), config, data, tmp_path / "o", tmp_path / "w")
    assert np.isfinite(data.frame_labels.numpy()).all()
