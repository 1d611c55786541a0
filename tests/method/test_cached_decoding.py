"""The decode loop (preallocated KV cache, one forward per step for all rows and both
guidance branches) gives exactly the tokens of recomputing every prefix without a cache."""

from __future__ import annotations

import pytest
import torch

from c3llm import sdk
from c3llm.method.continuation import continue_audio
from c3llm.method.generation import SamplingConfig, draw, generate_acoustic
from c3llm.method.sequence import collate, positions

CAPTIONS = ["a dog barks", "a high beep repeats three times"]  # different lengths: left padding


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    pipe = sdk.Pipeline.from_plugins(decoder="encodec", backbone="gemma")
    pipe.model.eval()
    return pipe.model


def uncached(model, prompts, frames: int, sampling: SamplingConfig, generators, unconditional=None):
    """The reference: every step re-runs each row's whole prefix, no cache, no preallocation."""
    backbone, special = model.backbone, model.backbone.special
    K, offset = special.acoustic_size, special.acoustic_offset
    codes = [torch.zeros(0, dtype=torch.long) for _ in prompts]
    for step in range(frames):
        rows = [continue_audio(p, c, offset) for p, c in zip(prompts, codes)]
        if unconditional is not None:
            rows += [continue_audio(u, c, offset) for u, c in zip(unconditional, codes)]
        batch = collate(rows, model, with_targets=False)
        hidden = backbone(batch.embeds, batch.mask, position_ids=positions(batch.mask)).hidden[:, -1:]
        logits = backbone.logits(hidden, rows=slice(offset, offset + K))[:, 0].float()
        if unconditional is not None:
            cond, uncond = logits[: len(prompts)], logits[len(prompts):]
            logits = uncond + sampling.guidance_scale * (cond - uncond)
        # </Audio> is barred before the last frame, so it never wins here: only the acoustic rows matter
        logits = torch.cat([logits, torch.full_like(logits[:, :1], float("-inf"))], -1)
        tok = draw(logits, sampling.temperature, sampling.top_k, sampling.top_p, generators)
        codes = [torch.cat([c, t[None]]) for c, t in zip(codes, tok)]
    return codes


@pytest.mark.parametrize("sampling", [
    SamplingConfig(temperature=0.0),
    SamplingConfig(temperature=1.0, top_k=20, top_p=0.9),
    SamplingConfig(temperature=1.0, top_k=50, guidance_scale=3.0),
], ids=["greedy", "top-k+top-p", "guided"])
def test_cached_loop_matches_recomputation_without_cache(model, sampling):
    prompts = [model.sequences.text_to_audio(c) for c in CAPTIONS]
    uncond = [model.sequences.unconditional_audio() for _ in prompts] if sampling.guidance_scale != 1 else None
    frames = 12
    fast = generate_acoustic(model, prompts, num_frames=[frames, frames], sampling=sampling, unconditional=uncond,
                             generator=[torch.Generator().manual_seed(s) for s in (1, 2)])
    slow = uncached(model, prompts, frames, sampling, [torch.Generator().manual_seed(s) for s in (1, 2)], uncond)
    assert [c.tolist() for c in fast] == [c.tolist() for c in slow]


def test_backbone_preallocates_the_cache(model):
    cache = model.backbone.new_cache(2, 40)
    assert cache is not None  # a StaticCache: decoding writes in place, nothing grows per step
    batch = collate([model.sequences.text_to_audio(c) for c in CAPTIONS], model, with_targets=False)
    out = model.backbone(batch.embeds, batch.mask, past=cache, use_cache=True)
    assert out.past is cache and int(cache.get_seq_length()) == batch.mask.shape[1]


def test_per_row_draws_are_the_multinomial_draws():
    probs = torch.softmax(torch.randn(5, 300) * 3, -1)
    logits = probs.log()
    got = draw(logits, 1.0, 0, 1.0, [torch.Generator().manual_seed(s) for s in range(5)])
    want = [int(torch.multinomial(probs[i:i + 1], 1, generator=torch.Generator().manual_seed(i))) for i in range(5)]
    assert got.tolist() == want


def test_nucleus_within_the_top_k_is_the_nucleus_of_the_whole_row():
    from c3llm.method.generation import filter_logits

    def full_sort(logits, top_k, top_p):  # the reference: top-k mask, then a sort of the whole row
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
        values, order = torch.sort(logits, descending=True, dim=-1)
        probs = values.softmax(-1)
        remove = probs.cumsum(-1) - probs >= top_p - 1e-6
        remove[..., 0] = False
        return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))

    logits = torch.randn(8, 1025) * 2
    logits[0, :30] = 1.5  # ties at the k-th value
    for top_k, top_p in ((20, 0.9), (250, 0.5), (5, 0.99), (20, 0.3)):
        assert torch.equal(filter_logits(logits, top_k, top_p).isinf(), full_sort(logits, top_k, top_p).isinf())
