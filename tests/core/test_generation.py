"""Decoding: sampling filters, constrained acoustic decoding, the fast path, CFG, text."""

from __future__ import annotations

import copy

import pytest
import torch

from c3llm import sdk
from c3llm.core.errors import InputError
from c3llm.method.generation import (
    SamplingConfig,
    TextDecodingConfig,
    filter_logits,
    generate_acoustic,
    generate_text,
)


@pytest.fixture(scope="module")
def lora_pipe() -> sdk.Pipeline:
    torch.manual_seed(0)
    pipe = sdk.Pipeline.from_plugins(decoder="encodec", backbone={"name": "gemma", "mode": "lora", "lora_r": 4},
                                     refiner={"name": "nar", "dim": 32, "num_layers": 1, "num_heads": 2})
    with torch.no_grad():  # make the adapters matter, so merging is a real change
        for name, p in pipe.model.backbone.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    pipe.model.eval()
    return pipe


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)[0, 2:]).all()
    kept = ~torch.isinf(filter_logits(logits, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7 <= 0.8
    kept = ~torch.isinf(filter_logits(logits, top_p=0.5))
    assert kept.tolist() == [[True, False, False, False]]


def test_fast_path_yields_the_plain_path_tokens(lora_pipe):
    """Merged LoRA + sliced head decodes exactly the tokens of the peft model with a full head."""
    model = lora_pipe.model
    prompts = [model.sequences.text_to_audio(t) for t in ("a dog barks", "a high beep repeats three times")]
    sampling = SamplingConfig(temperature=0.9, top_k=50)
    plain = generate_acoustic(model, prompts, num_frames=[12, 7], sampling=sampling,
                              generator=torch.Generator().manual_seed(5))
    fast_model = copy.deepcopy(model)
    fast_model.backbone.prepare_for_inference()
    assert not any("lora" in n for n, _ in fast_model.backbone.named_parameters())
    fast = generate_acoustic(fast_model, prompts, num_frames=[12, 7], sampling=sampling,
                             generator=torch.Generator().manual_seed(5))
    assert [c.tolist() for c in plain] == [c.tolist() for c in fast]
    assert [len(c) for c in plain] == [12, 7]


def test_codes_stay_in_the_acoustic_range_and_stop_at_the_marker(lora_pipe):
    model = lora_pipe.model
    K = model.backbone.special.acoustic_size
    prompts = [model.sequences.text_to_audio("a bell rings")]
    codes = generate_acoustic(model, prompts, num_frames=[None], sampling=SamplingConfig(max_seconds=0.4),
                              generator=torch.Generator().manual_seed(0))
    assert 1 <= len(codes[0]) <= model.decoder.frames_for(0.4)
    assert int(codes[0].min()) >= 0 and int(codes[0].max()) < K


def test_guidance_changes_output_and_needs_unconditional_prompts(lora_pipe):
    model = lora_pipe.model
    prompts = [model.sequences.text_to_audio("a dog barks")]
    uncond = [model.sequences.unconditional_audio()]
    greedy = SamplingConfig(temperature=0.0)
    base = generate_acoustic(model, prompts, num_frames=[10], sampling=greedy)
    guided = generate_acoustic(model, prompts, num_frames=[10], unconditional=uncond,
                               sampling=SamplingConfig(temperature=0.0, guidance_scale=3.0))
    assert len(guided[0]) == 10 and base[0].tolist() != guided[0].tolist()
    with pytest.raises(InputError, match="unconditional prompt"):
        generate_acoustic(model, prompts, num_frames=[4], sampling=SamplingConfig(guidance_scale=2.0))


def test_text_decoding_strategies_avoid_acoustic_tokens(lora_pipe):
    model = lora_pipe.model
    special = model.backbone.special
    prompts = [model.sequences.audio_to_text(torch.randn(5, 16))] if "audio" in model.projectors else None
    if prompts is None:  # no audio encoder in this pipeline: caption from a text prompt instead
        prompts = [model.sequences.unconditional_audio()]
    for decoding in (TextDecodingConfig(max_tokens=6), TextDecodingConfig(strategy="beam", num_beams=3, max_tokens=6),
                     TextDecodingConfig(strategy="sample", max_tokens=6, top_k=5)):
        ids = generate_text(model, prompts, decoding, generator=torch.Generator().manual_seed(0))[0]
        assert len(ids) <= 6
        assert not set(ids) & set(special.acoustic_ids())
        assert special.audio_end not in ids and special.audio_start not in ids
