"""``[pretrain]``: what the pretrain stage trains on the foundation corpus, and how.

Each model table names the plugin component whose architecture it pretrains (built through
the registry, like any component) and the optimisation (``train``, an
:class:`~c3llm.app.training.loop.OptimConfig`). Every folder the stage writes is keyed by a
hash of the tables that made it (:mod:`.cache`).
"""

from __future__ import annotations

from typing import Any

import attrs

from c3llm.app.foundation.dataset import FoundationDataConfig
from c3llm.app.training.loop import OptimConfig
from c3llm.core.config import field, in_range, one_of

MODELS = ("lm", "clap", "video")


@attrs.frozen(kw_only=True)
class LMPretrainConfig:
    """The text LM: a backbone preset trained as a causal LM on the corpus captions."""

    backbone: dict[str, Any] = field(
        factory=lambda: {"name": "gemma", "preset": "tiny"},
        help="backbone table of the random preset to pretrain (its tokenizer is trained on the captions)")
    max_tokens: int = field(48, validator=in_range(8), help="longest token sequence ([bos] caption [eos])")
    train: OptimConfig = field(factory=lambda: OptimConfig(steps=1500, batch_size=32, lr=2e-3, warmup_steps=100,
                                                           checkpoint_every=500, log_every=50))


@attrs.frozen(kw_only=True)
class ClapPretrainConfig:
    """CLAP: the encoder's audio tower and a small text tower, symmetric InfoNCE on (clip, caption)."""

    encoder: dict[str, Any] = field(factory=lambda: {"name": "clap", "preset": "tiny"},
                                    help="audio encoder table whose HTSAT architecture is pretrained")
    text_hidden: int = field(64, validator=in_range(8), help="text tower width")
    text_layers: int = field(2, validator=in_range(1), help="text tower layers")
    text_heads: int = field(4, validator=in_range(1), help="text tower attention heads")
    text_vocab_size: int = field(1000, validator=in_range(64), help="largest text tokenizer vocabulary")
    max_tokens: int = field(40, validator=in_range(8), help="longest caption in tokens")
    train: OptimConfig = field(factory=lambda: OptimConfig(steps=800, batch_size=32, lr=1e-3, warmup_steps=50,
                                                           checkpoint_every=200, log_every=25))


@attrs.frozen(kw_only=True)
class VideoPretrainConfig:
    """The frame CNN: supervised per-frame kinds / pitch (RGB frames) and onsets (flow images)."""

    encoder: dict[str, Any] = field(
        factory=lambda: {"name": "rgb-flow", "extractor": "resnet10-slim", "fps": 12.0, "frame_size": 64},
        help="video encoder table whose frame CNN is pretrained (extractor, frame_size, fps)")
    flow: str = field("farneback", validator=one_of("farneback"),
                      help="optical flow of the training flow images (the encoder's 'auto' is Farnebäck "
                           "without opencv-contrib)")
    train: OptimConfig = field(factory=lambda: OptimConfig(steps=600, batch_size=32, lr=2e-3, warmup_steps=50,
                                                           checkpoint_every=200, log_every=25))


@attrs.frozen(kw_only=True)
class PretrainSection:
    """[pretrain]: the foundation corpus and the models pretrained on it."""

    root: str | None = field(None, help="folder of the corpus and the models (shared by runs; unset: "
                             "{out_dir}/foundation); each model is also linked as {root}/lm, {root}/clap, {root}/video")
    models: tuple[str, ...] = field(MODELS, help=f"which foundation models to pretrain, from {MODELS}")
    seed: int = field(0, validator=in_range(0), help="seed of the initialisations and batch draws")
    corpus: FoundationDataConfig = field(factory=FoundationDataConfig)
    lm: LMPretrainConfig = field(factory=LMPretrainConfig)
    clap: ClapPretrainConfig = field(factory=ClapPretrainConfig)
    video: VideoPretrainConfig = field(factory=VideoPretrainConfig)

    def __attrs_post_init__(self) -> None:
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise ValueError(f"pretrain.models: unknown model {unknown[0]!r}; choose from {list(MODELS)}")
