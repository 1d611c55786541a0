"""Official ``encodec`` ``.th`` checkpoints load into the transformers-based codec.

The official key layout is built here from the official module structure
(facebookresearch/encodec: ``SEANetEncoder``/``SEANetDecoder`` are ``nn.Sequential`` stacks
``self.model``; ``SConv1d.conv`` -> ``NormConv1d.conv`` -> ``weight_norm(nn.Conv1d)`` with
``weight_g``/``weight_v``; ``SConvTranspose1d.convtr.convtr``; ``SLSTM.lstm``;
``SEANetResnetBlock.block`` = [ELU, SConv1d, ELU, SConv1d] + ``shortcut``;
``ResidualVectorQuantizer.vq.layers[k]._codebook`` buffers), not by inverting the plugin's
key mapping. Values are taken from the live transformers modules by attribute, so the test
proves the mapping puts every official tensor where it belongs.
"""

from __future__ import annotations

import pytest
import torch

from c3llm.core.errors import CheckpointError
from c3llm.plugins.decoders.encodec import EncodecCodec, EncodecCodecConfig
from c3llm.plugins.decoders.encodec_checkpoint import official_state_dict_to_hf

LSTM_PARAMS = ("weight_ih_l{}", "weight_hh_l{}", "bias_ih_l{}", "bias_hh_l{}")


def official_layout(model, arch) -> dict[str, torch.Tensor]:
    """State dict of ``encodec.EncodecModel`` (official names) holding ``model``'s tensors."""
    out: dict[str, torch.Tensor] = {}

    def sconv(prefix: str, module, transposed: bool = False) -> None:
        inner = "convtr.convtr" if transposed else "conv.conv"
        weight = module.conv.parametrizations.weight
        out[f"{prefix}.{inner}.weight_g"] = weight.original0
        out[f"{prefix}.{inner}.weight_v"] = weight.original1
        out[f"{prefix}.{inner}.bias"] = module.conv.bias

    def resnet_block(prefix: str, module) -> None:
        sconv(f"{prefix}.block.1", module.block[1])  # block = [ELU, SConv1d, ELU, SConv1d]
        sconv(f"{prefix}.block.3", module.block[3])
        sconv(f"{prefix}.shortcut", module.shortcut)  # true_skip=False in the official models

    def slstm(prefix: str, module) -> None:
        for layer in range(arch["num_lstm_layers"]):
            for name in LSTM_PARAMS:
                key = name.format(layer)
                out[f"{prefix}.lstm.{key}"] = getattr(module.lstm, key)

    ratios = arch["upsampling_ratios"]
    enc = model.encoder.layers
    i = 0
    sconv(f"encoder.model.{i}", enc[i]); i += 1
    for _ in reversed(ratios):
        for _ in range(arch["num_residual_layers"]):
            resnet_block(f"encoder.model.{i}", enc[i]); i += 1
        i += 1  # ELU
        sconv(f"encoder.model.{i}", enc[i]); i += 1
    slstm(f"encoder.model.{i}", enc[i]); i += 1
    i += 1  # ELU
    sconv(f"encoder.model.{i}", enc[i]); i += 1
    assert i == len(enc)

    dec = model.decoder.layers
    i = 0
    sconv(f"decoder.model.{i}", dec[i]); i += 1
    slstm(f"decoder.model.{i}", dec[i]); i += 1
    for _ in ratios:
        i += 1  # ELU
        sconv(f"decoder.model.{i}", dec[i], transposed=True); i += 1
        for _ in range(arch["num_residual_layers"]):
            resnet_block(f"decoder.model.{i}", dec[i]); i += 1
    i += 1  # ELU
    sconv(f"decoder.model.{i}", dec[i]); i += 1
    assert i == len(dec)

    for k, layer in enumerate(model.quantizer.layers):
        for buffer in ("inited", "cluster_size", "embed", "embed_avg"):
            out[f"quantizer.vq.layers.{k}._codebook.{buffer}"] = getattr(layer.codebook, buffer)
    return {k: v.detach().clone() for k, v in out.items()}


def test_official_th_gives_the_same_codes_and_audio_as_the_hf_save(codec, tiny_config, tmp_path):
    torch.save(official_layout(codec.model, codec.arch), tmp_path / "encodec_tiny.th")
    codec.save_pretrained(tmp_path / "hf")

    from_th = EncodecCodec(tiny_config(pretrained=str(tmp_path / "encodec_tiny.th")))
    from_th.load_pretrained()
    from_hf = EncodecCodec(tiny_config(pretrained=str(tmp_path / "hf")))
    from_hf.load_pretrained()

    wav = torch.randn(2, 1, 2000) * 0.3
    codes = from_hf.encode(wav)
    assert codes[:, 0].unique().numel() > 1
    assert torch.equal(from_th.encode(wav), codes)
    assert torch.equal(from_th.decode(codes), from_hf.decode(codes))


def test_mapping_covers_the_24khz_model_exactly():
    """All 252 tensors of the published 24 kHz model, names and shapes, no more, no less."""
    codec = EncodecCodec(EncodecCodecConfig(preset="encodec_24khz"))
    official = official_layout(codec.model, codec.arch)
    mapped = official_state_dict_to_hf(official)
    own = codec.model.state_dict()
    assert len(official) == 252
    assert set(mapped) == set(own)
    assert all(mapped[k].shape == own[k].shape for k in own)
    assert "encoder.model.1.block.1.conv.conv.weight_g" in official
    assert "decoder.model.3.convtr.convtr.weight_v" in official
    assert "quantizer.vq.layers.31._codebook.embed" in official


def test_official_checkpoint_of_another_size_is_refused(codec, tiny_config, tmp_path):
    torch.save(official_layout(codec.model, codec.arch), tmp_path / "small.th")
    wider = EncodecCodec(tiny_config(n_filters=8, pretrained=str(tmp_path / "small.th")))
    with pytest.raises(CheckpointError, match="shape mismatch.*different config"):
        wider.load_pretrained()


def test_non_tensor_entries_are_refused(tiny_config, tmp_path):
    torch.save({"encoder.model.0.conv.conv.bias": [1, 2]}, tmp_path / "odd.th")
    with pytest.raises(CheckpointError, match="odd.th|not a tensor"):
        EncodecCodec(tiny_config(pretrained=str(tmp_path / "odd.th"))).load_pretrained()
