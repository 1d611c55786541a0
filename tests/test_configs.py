"""Every shipped config loads and resolves; the paper config's code path runs on a
scaled-down Gemma (and LLaMA) written here as HF-format directories."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from c3llm import sdk
from c3llm.app.run_config import parse_run_config
from c3llm.core.config import load_file
from c3llm.core.errors import C3LLMError
from c3llm.core.registry import get_registry

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


def test_configs_are_shipped():
    assert {p.stem for p in CONFIGS} >= {"tiny", "demo", "paper", "llama3"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_resolves(path):
    config = parse_run_config(load_file(path), base_dir=path.parent, registry=get_registry())
    resolved = config.to_mapping(get_registry())
    assert resolved["decoder"]["name"] and resolved["backbone"]["name"]


def write_scaled_down(kind: str, directory: Path) -> Path:
    """A tiny random Gemma/LLaMA in HF format, with a tokenizer, as a user's download would be."""
    from transformers import (
        GemmaConfig,
        GemmaForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    from c3llm.plugins.backbones.text_tokenizer import train_tokenizer

    tok = train_tokenizer(["a dog barks", "a high beep repeats three times", "rain on a roof"], vocab_size=128)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.add_special_tokens({"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"})
    dims = dict(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=16, bos_token_id=fast.bos_token_id,
                eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    torch.manual_seed(0)
    model = (GemmaForCausalLM(GemmaConfig(**dims)) if kind == "gemma" else LlamaForCausalLM(LlamaConfig(**dims)))
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


@pytest.mark.parametrize(("config_name", "kind"), [("paper", "gemma"), ("llama3", "llama")])
def test_paper_code_path_on_a_scaled_down_checkpoint(tmp_path, config_name, kind):
    data = load_file(Path(__file__).resolve().parents[1] / "configs" / f"{config_name}.toml")
    data["backbone"]["pretrained"] = str(write_scaled_down(kind, tmp_path / kind))
    data["backbone"]["dtype"] = "float32"
    # codec and encoders stay small here (their loaders have their own tests)
    data["decoder"] = {"name": "encodec", "preset": "tiny"}
    data["audio_encoder"] = {"name": "clap", "preset": "tiny", "num_local_frames": 4}
    data["video_encoder"] = {"name": "rgb-flow", "extractor": "handcrafted", "fps": 8.0, "frame_size": 32}
    data["refiner"].update(dim=32, num_layers=1, num_heads=2)
    pipe = sdk.Pipeline.from_config(data)
    backbone = pipe.model.backbone
    assert any("lora" in n for n, p in backbone.named_parameters() if p.requires_grad)
    trainable = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    assert 0 < trainable < sum(p.numel() for p in backbone.parameters())
    saved = pipe.save_pretrained(tmp_path / "ckpt")
    from safetensors import safe_open

    with safe_open(str(saved / "backbone" / "weights.safetensors"), "pt") as handle:
        keys = list(handle.keys())
    assert keys and all("lora" in k or "token" in k for k in keys), keys  # adapters + new rows, no base weights
    assert not any("mlp" in k for k in keys)
    audio = sdk.Pipeline.from_pretrained(saved).text_to_audio("a dog barks", duration=0.4, seed=0)
    assert audio.waveform.shape[-1] == round(0.4 * audio.sample_rate)


def test_paper_config_without_the_weights_says_what_is_missing():
    with pytest.raises(C3LLMError, match=r"/models/"):
        sdk.Pipeline.from_config(Path(__file__).resolve().parents[1] / "configs" / "paper.toml")
