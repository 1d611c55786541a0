"""Tiny EnCodec configs shared by the codec tests (fixtures only: no imports between test files)."""

from __future__ import annotations

import pytest
import torch

from c3llm.plugins.decoders.encodec import EncodecCodec, EncodecCodecConfig

TINY = dict(
    preset="tiny", sample_rate=8000, n_filters=4, hidden_size=16, upsampling_ratios=(4, 4, 2),
    codebook_size=64, total_codebooks=3, num_codebooks=2,
)


def _randomise_codebooks(codec: EncodecCodec, seed: int = 0) -> EncodecCodec:
    """Give every codebook random entries (a fresh model has zeros) so codes are informative."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in codec.model.quantizer.layers:
            cb = layer.codebook
            cb.embed.copy_(torch.randn(cb.embed.shape, generator=gen) * 0.05)
            cb.embed_avg.copy_(cb.embed)
            cb.cluster_size.copy_(torch.rand(cb.cluster_size.shape, generator=gen))
            cb.inited.fill_(1.0)
    return codec.eval()


@pytest.fixture
def tiny_config():
    """``tiny_config(**overrides)`` -> a small :class:`EncodecCodecConfig` (8 kHz, hop 32)."""

    def make(**overrides) -> EncodecCodecConfig:
        return EncodecCodecConfig(**{**TINY, **overrides})

    return make


@pytest.fixture
def randomise_codebooks():
    return _randomise_codebooks


@pytest.fixture
def codec(tiny_config) -> EncodecCodec:
    torch.manual_seed(0)
    return _randomise_codebooks(EncodecCodec(tiny_config()))
