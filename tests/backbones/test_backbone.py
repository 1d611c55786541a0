"""Behaviour of the causal-LM backbones, table-driven over the ``gemma`` and ``llama`` plugins."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from backbone_helpers import ACOUSTIC, build

from c3llm.core.errors import C3LLMError, CheckpointError, InputError

CAPTIONS = ["a high beep repeats three times", "a dog barks"]


def _batch(backbone, with_acoustic: bool = True) -> torch.Tensor:
    """(1, T) ids: a caption, then (optionally) <Audio> a few acoustic tokens </Audio>."""
    ids = backbone.tokenize(CAPTIONS[:1])[0]
    if with_acoustic:
        sp = backbone.special
        ids = ids + [sp.audio_start] + [sp.acoustic_offset + c for c in (0, 5, 15, 3)] + [sp.audio_end]
    return torch.tensor([ids])


def _lm_loss(backbone, ids: torch.Tensor) -> torch.Tensor:
    hidden = backbone(backbone.embed(ids), torch.ones_like(ids)).hidden  # (B, T, D)
    logits = backbone.logits(hidden)  # (B, T, V)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


def test_vocabulary_layout(plugin):
    backbone = build(plugin)
    sp = backbone.special
    assert sp.acoustic_size == ACOUSTIC
    assert list(sp.acoustic_ids()) == [backbone.tokenizer.token_to_id(f"<a_{c}>") for c in range(ACOUSTIC)]
    end = sp.acoustic_offset + ACOUSTIC
    assert [sp.audio_start, sp.audio_end, sp.video_start, sp.video_end] == list(range(end, end + 4))
    rows = backbone.logits(torch.zeros(1, 1, backbone.hidden_size)).shape[-1]
    assert rows == end + 4
    # Acoustic tokens and markers are skipped when decoding; text round-trips.
    ids = backbone.tokenize(CAPTIONS)
    assert [backbone.detokenize(i) for i in ids] == CAPTIONS
    assert backbone.detokenize([sp.audio_start, sp.acoustic_offset + 2] + ids[1] + [sp.audio_end]) == CAPTIONS[1]
    with pytest.raises(InputError, match="text 1 is empty"):
        backbone.tokenize(["a beep", ""])
    with pytest.raises(C3LLMError, match="exactly once"):
        backbone.add_acoustic_vocabulary(ACOUSTIC)


def test_gemma_head_stays_tied():
    backbone = build("gemma")
    assert backbone._tied_head
    hf = backbone._hf()
    # Through peft's wrappers: the head's rows are the embedding's rows, new ones included.
    hidden = torch.randn(1, 3, backbone.hidden_size)
    table = hf.get_input_embeddings()(torch.arange(backbone.logits(hidden).shape[-1])[None])[0]
    table = table / hf.get_input_embeddings().token_adapter.base_layer.embed_scale  # undo sqrt(D)
    torch.testing.assert_close(backbone.logits(hidden), hidden @ table.T)
    backbone.prepare_for_inference()
    hf = backbone._hf()
    assert hf.get_output_embeddings().weight is hf.get_input_embeddings().weight


@pytest.mark.parametrize("stage", ["before", "after"])
def test_embed_splice_matches_the_models_own_forward(plugin, stage):
    backbone = build(plugin, acoustic=None if stage == "before" else ACOUSTIC)
    backbone.eval()
    ids = _batch(backbone, with_acoustic=stage == "after")
    with torch.no_grad():
        ours = backbone.logits(backbone(backbone.embed(ids), torch.ones_like(ids)).hidden)
        theirs = backbone.model(input_ids=ids).logits  # the (peft-wrapped) model on ids
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    if plugin == "gemma":  # transformers 5.x scales inside the embedding layer
        raw = backbone._hf().get_input_embeddings().weight if stage == "before" else None
        if raw is not None:
            torch.testing.assert_close(backbone.embed(ids), raw[ids] * backbone.hidden_size**0.5)


def test_kv_cache_steps_equal_full_forward(plugin):
    backbone = build(plugin)
    backbone.eval()
    ids = _batch(backbone)
    embeds, mask = backbone.embed(ids), torch.ones_like(ids)
    with torch.no_grad():
        full = backbone(embeds, mask).hidden  # (1, T, D)
        out = backbone(embeds[:, :3], mask[:, :3], use_cache=True)
        steps = [out.hidden]
        for t in range(3, ids.shape[1]):
            out = backbone(embeds[:, t : t + 1], mask[:, : t + 1], past=out.past, use_cache=True)
            steps.append(out.hidden)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=1e-5)


def test_left_padding_leaves_real_tokens_unchanged(plugin):
    backbone = build(plugin)
    backbone.eval()
    short, long = backbone.tokenize(["a dog barks", "a high beep repeats three times"])
    pad = backbone.special.pad
    ids = torch.tensor([[pad] * (len(long) - len(short)) + short, long])
    mask = (torch.arange(ids.shape[1]) >= len(long) - len(short)).long()[None].repeat(2, 1)
    mask[1] = 1
    with torch.no_grad():
        batched = backbone(backbone.embed(ids), mask).hidden
        alone = backbone(backbone.embed(torch.tensor([short])), torch.ones(1, len(short), dtype=torch.long)).hidden
    torch.testing.assert_close(batched[0, -len(short):], alone[0], rtol=0, atol=1e-5)


def _snapshot(backbone, old_ids, new_ids, probe):
    with torch.no_grad():
        logits = backbone.logits(probe)[0]  # (T, V)
        return {
            "old_rows": backbone.embed(old_ids).clone(),
            "new_rows": backbone.embed(new_ids).clone(),
            "old_head": logits[:, old_ids[0]].clone(),
            "new_head": logits[:, new_ids[0]].clone(),
            "q_proj": backbone._hf().get_decoder().layers[0].self_attn.q_proj.weight.detach().clone(),
        }


def _train(backbone, steps: int = 2):
    ids = _batch(backbone)
    params = [p for p in backbone.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        _lm_loss(backbone, ids).backward()
        optimizer.step()


@pytest.mark.parametrize("mode", ["lora", "frozen", "full"])
def test_what_trains(plugin, mode):
    backbone = build(plugin, mode=mode, lora_dropout=0.0)
    sp = backbone.special
    old_ids = torch.tensor([list(range(sp.acoustic_offset))])
    new_ids = torch.tensor([list(sp.acoustic_ids()) + [sp.audio_start, sp.audio_end, sp.video_start, sp.video_end]])
    probe = torch.randn(1, 2, backbone.hidden_size)
    trainable = {n: p.detach().clone() for n, p in backbone.named_parameters() if p.requires_grad}
    before = _snapshot(backbone, old_ids, new_ids, probe)
    _train(backbone)
    after = _snapshot(backbone, old_ids, new_ids, probe)

    assert not torch.equal(before["new_rows"], after["new_rows"])
    assert not torch.equal(before["new_head"], after["new_head"])
    for name, value in trainable.items():  # every trainable tensor moved
        assert not torch.equal(value, dict(backbone.named_parameters())[name]), name
    if mode == "full":
        assert not torch.equal(before["q_proj"], after["q_proj"])
        assert not torch.equal(before["old_rows"], after["old_rows"])
        return
    torch.testing.assert_close(after["old_rows"], before["old_rows"], rtol=0, atol=0)
    torch.testing.assert_close(after["old_head"], before["old_head"], rtol=0, atol=0)
    torch.testing.assert_close(after["q_proj"], before["q_proj"], rtol=0, atol=0)
    lora = [n for n in trainable if "lora_" in n]
    assert bool(lora) == (mode == "lora")
    assert all("lora_" in n or "trainable_tokens_delta" in n for n in trainable)


def _greedy(backbone, prompt: torch.Tensor, steps: int, *, sliced: bool) -> list[int]:
    """Greedy acoustic decoding with the KV cache: full head masked, or the sliced head."""
    sp = backbone.special
    acoustic = slice(sp.acoustic_offset, sp.acoustic_offset + sp.acoustic_size)
    mask = torch.ones_like(prompt)
    out = backbone(backbone.embed(prompt), mask, use_cache=True)
    hidden, tokens = out.hidden[:, -1:], []
    for _ in range(steps):
        if sliced:
            token = backbone.logits(hidden, rows=acoustic).argmax(-1) + sp.acoustic_offset  # (1, 1)
        else:
            logits = backbone.logits(hidden)
            allowed = torch.full_like(logits, float("-inf"))
            allowed[..., acoustic] = 0.0
            token = (logits + allowed).argmax(-1)
        tokens.append(int(token))
        mask = torch.cat([mask, torch.ones_like(token)], 1)
        out = backbone(backbone.embed(token), mask, past=out.past, use_cache=True)
        hidden = out.hidden
    return tokens


@pytest.mark.parametrize("mode", ["lora", "frozen"])
def test_merged_sliced_decoding_equals_peft_decoding(plugin, mode):
    backbone = build(plugin, mode=mode, lora_dropout=0.0)
    with torch.no_grad():  # a trained-looking adapter: non-zero LoRA, moved token rows
        for p in backbone.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)
    backbone.eval()
    prompt = _batch(backbone)
    with torch.no_grad():
        wrapped = _greedy(backbone, prompt, 20, sliced=False)
        backbone.prepare_for_inference()
        assert type(backbone.model).__name__.endswith("ForCausalLM")
        merged = _greedy(backbone, prompt, 20, sliced=True)
    assert wrapped == merged
    if mode == "lora":  # a varied sequence (a random tied model with frozen layers echoes its input)
        assert len(set(wrapped)) > 1
    with pytest.raises(CheckpointError, match="merged for inference"):
        backbone.checkpoint_state_dict()


def test_checkpoint_round_trip(plugin, tmp_path):
    backbone = build(plugin, lora_dropout=0.0)
    _train(backbone)
    backbone.eval()
    state = backbone.checkpoint_state_dict()
    overrides = backbone.export_assets(tmp_path)
    assert overrides == {"tokenizer_path": "tokenizer.json"}
    # A random preset has nothing to rebuild it from: the checkpoint holds every weight.
    assert any("q_proj.base_layer.weight" in k for k in state)

    torch.manual_seed(123)  # a different random init, overwritten by the checkpoint
    again = build(plugin, lora_dropout=0.0, tokenizer_path=str(tmp_path / overrides["tokenizer_path"]))
    again.load_checkpoint_state_dict(state)
    again.eval()
    assert again.special == backbone.special
    assert again.tokenize(CAPTIONS) == backbone.tokenize(CAPTIONS)
    ids = _batch(backbone)
    with torch.no_grad():
        torch.testing.assert_close(
            again.logits(again(again.embed(ids), torch.ones_like(ids)).hidden),
            backbone.logits(backbone(backbone.embed(ids), torch.ones_like(ids)).hidden),
            rtol=0, atol=0,
        )


def test_mismatched_checkpoint_is_refused(plugin):
    state = build(plugin).checkpoint_state_dict()
    with pytest.raises(CheckpointError, match="shape mismatch: .*lora_A"):
        build(plugin, lora_r=4).load_checkpoint_state_dict(state)
    with pytest.raises(CheckpointError, match="shape mismatch: .*embed_tokens"):
        build(plugin, acoustic=ACOUSTIC + 1).load_checkpoint_state_dict(state)
    with pytest.raises(CheckpointError, match=r"missing \d+ key"):
        build(plugin).load_checkpoint_state_dict({k: v for k, v in state.items() if "lora_B" not in k})
    with pytest.raises(CheckpointError, match="unexpected"):
        build(plugin, mode="frozen").load_checkpoint_state_dict(state)


def test_bad_calls_are_named(plugin):
    backbone = build(plugin)
    with pytest.raises(InputError, match="token ids must lie in"):
        backbone.embed(torch.tensor([[10**6]]))
    with pytest.raises(InputError, match=r"attention_mask must be \(B, T_past \+ T\)"):
        backbone(torch.zeros(1, 3, backbone.hidden_size), torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(InputError, match="contiguous slice"):
        backbone.logits(torch.zeros(1, 1, backbone.hidden_size), rows=slice(0, 10, 2))
    fresh = build(plugin, acoustic=None)
    with pytest.raises(C3LLMError, match="add_acoustic_vocabulary"):
        fresh.special
