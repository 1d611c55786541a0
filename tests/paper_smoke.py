"""Smoke files for configs/paper.toml and configs/llama3.toml: every checkpoint in the format
its public counterpart ships in, and a tiny world in the public datasets' layouts.

What is real and what is reduced:

- ``models/encodec_24khz-d7cc33bc.th``: Meta's EnCodec 24 kHz at its real architecture (the
  official ``encodec`` state_dict layout, ``weight_g``/``weight_v``, ``_codebook`` buffers),
  random weights, ~15 M parameters;
- ``models/clap-htsat-unfused``: an HF ``ClapModel`` directory like ``laion/clap-htsat-unfused``
  (config.json + model.safetensors + preprocessor_config.json) whose audio tower is HTSAT-tiny
  at its real width; only the text tower, which the encoder never loads, is shrunk;
- ``models/resnet50-0676ba61.pth``: torchvision's ResNet-50 layout at its real width,
  ``fc.*`` included and, as in the original ImageNet file, no ``num_batches_tracked``;
- ``models/gemma-2b`` / ``models/Meta-Llama-3-8B``: HF Gemma / LLaMA directories (config.json,
  model.safetensors, tokenizer.json) of the real model classes at reduced width: the only
  reduced checkpoints, read at whatever dims their config.json states;
- ``data/audiocaps``, ``data/clotho``, ``data/vggsound``: one synthetic world written in the
  three public layouts (24 kHz wavs, mp4 videos), 1 s clips.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

#: The walkthrough's (docs/paper_scale.md) file names under /models.
GEMMA = "gemma-2b"
LLAMA = "Meta-Llama-3-8B"
ENCODEC = "encodec_24khz-d7cc33bc.th"
CLAP = "clap-htsat-unfused"
RESNET = "resnet50-0676ba61.pth"


def write_world(root: Path) -> Path:
    """A tiny synthetic world (AudioCaps, Clotho and VGGSound layouts in one folder) and the
    three dataset folders of the walkthrough pointing at it."""
    from c3llm.plugins.datasets.synthetic import WorldConfig, generate_world

    world = root / "world"
    generate_world(WorldConfig(num_train=3, num_test=2, num_test_novel=0, duration=1.0, max_events=1,
                               sample_rate=24_000, seed=0), world, progress=False)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in ("audiocaps", "clotho", "vggsound"):
        (data / name).symlink_to(world, target_is_directory=True)
    return data


def world_captions(world: Path) -> list[str]:
    rows = [json.loads(line) for line in (world / "metadata.jsonl").read_text().splitlines() if line.strip()]
    return [caption for row in rows for caption in row["captions"]]


def write_language_model(kind: str, directory: Path, corpus: list[str]) -> Path:
    """A random Gemma / LLaMA in HF format at reduced width, with a tokenizer trained on
    ``corpus``: the real classes and files, read through config.json like a download."""
    from transformers import (
        GemmaConfig,
        GemmaForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    from c3llm.plugins.backbones.text_tokenizer import train_tokenizer

    tok = train_tokenizer(corpus, vocab_size=256)
    special = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    fast.add_special_tokens(special)
    dims = dict(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=1, head_dim=16, bos_token_id=fast.bos_token_id,
                eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GemmaForCausalLM(GemmaConfig(**dims)) if kind == "gemma" else LlamaForCausalLM(LlamaConfig(**dims))
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


def write_encodec_th(path: Path) -> Path:
    """Meta's ``encodec_24khz-d7cc33bc.th`` layout at the real 24 kHz architecture."""
    from decoders.test_encodec_official import official_layout

    from c3llm.plugins.decoders.encodec import EncodecCodec, EncodecCodecConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        codec = EncodecCodec(EncodecCodecConfig(preset="encodec_24khz"))
    torch.save(official_layout(codec.model, codec.arch), path)
    return path


def write_clap_directory(directory: Path) -> Path:
    """An HF ``ClapModel`` directory like ``laion/clap-htsat-unfused``: HTSAT-tiny audio tower
    at its real width, a small text tower (never loaded by the encoder)."""
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
    )

    from c3llm.plugins.encoders.clap import PRESETS

    preset = PRESETS["htsat-tiny"]
    audio = ClapAudioConfig(**preset["model"]).to_dict()
    text = dict(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                projection_dim=preset["model"]["projection_dim"], max_position_embeddings=40)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ClapModel(ClapConfig(audio_config=audio, text_config=text,
                                     projection_dim=preset["model"]["projection_dim"]))
    model.save_pretrained(directory)
    ClapFeatureExtractor(**preset["extractor"]).save_pretrained(directory)
    return directory


def write_resnet50_pth(path: Path) -> Path:
    """torchvision's original ``resnet50-0676ba61.pth`` layout: the classifier ``fc`` kept,
    no BatchNorm ``num_batches_tracked`` (the file predates the counter)."""
    from c3llm.plugins.encoders.frame_cnn import ResNetFeatures

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = ResNetFeatures("resnet50")
        state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
        state["fc.weight"] = torch.randn(1000, net.feature_dim) * 0.01
        state["fc.bias"] = torch.zeros(1000)
    torch.save(state, path)
    return path


def write_smoke_files(root: Path, backbones: tuple[str, ...] = ("gemma", "llama")) -> dict[str, Path]:
    """Every file the walkthrough names, under ``root/models`` and ``root/data``."""
    data = write_world(root)
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    corpus = world_captions(root / "world") + ["Generate the sound described by:",
                                               "Generate the sound of this video:", "Describe this sound:"]
    written = {"data": data, "models": models}
    if "gemma" in backbones:
        written["gemma"] = write_language_model("gemma", models / GEMMA, corpus)
    if "llama" in backbones:
        written["llama"] = write_language_model("llama", models / LLAMA, corpus)
    written["encodec"] = write_encodec_th(models / ENCODEC)
    written["clap"] = write_clap_directory(models / CLAP)
    written["resnet"] = write_resnet50_pth(models / RESNET)
    return written
