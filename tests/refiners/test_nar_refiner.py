"""The `nar` refiner: shapes, masks, learning, multi-codebook refinement, errors, checkpoints."""

from __future__ import annotations

import attrs
import pytest
import torch
from safetensors.torch import load_file, save_file

from c3llm.core.config import bind, from_mapping
from c3llm.core.errors import (
    CheckpointError,
    ConfigError,
    IncompatibleComponentsError,
    InputError,
)
from c3llm.plugins.refiners.nar import NARRefiner, NARRefinerConfig
from c3llm.testing.contracts import check_refiner

COND_DIM, K = 12, 16


def tiny(q: int = 2, **overrides) -> NARRefiner:
    values = dict(num_codebooks=q, cardinality=K, cond_dim=COND_DIM, dim=32, num_layers=2,
                  num_heads=4, dropout=0.0, max_frames=64)
    values.update(overrides)
    return NARRefiner(NARRefinerConfig(**values))


def batch(q: int, b: int = 3, n: int = 5, s: int = 10):
    cond = torch.randn(b, n, COND_DIM)
    cond_mask = torch.ones(b, n, dtype=torch.bool)
    codes = torch.randint(0, K, (b, q, s))
    code_mask = torch.ones(b, s, dtype=torch.bool)
    return cond, cond_mask, codes, code_mask


@pytest.mark.parametrize("q", [2, 4])
def test_forward_shapes_for_every_stage(q):
    torch.manual_seed(0)
    refiner = tiny(q)
    cond, cond_mask, codes, code_mask = batch(q)
    for stage in range(1, q):
        logits = refiner(cond, cond_mask, codes[:, :stage], code_mask, stage)
        assert logits.shape == (3, 10, K)
        assert torch.isfinite(logits).all()
    loss = refiner.loss(cond, cond_mask, codes, code_mask)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert refiner.heads[0].weight.grad is not None


@pytest.mark.parametrize("q", [2, 3])
def test_role_contract(q):
    torch.manual_seed(0)
    check_refiner(tiny(q, cond_dropout=0.1))


def test_later_codebooks_in_input_are_ignored():
    torch.manual_seed(0)
    refiner = tiny(4).eval()
    cond, cond_mask, codes, code_mask = batch(4)
    other = codes.clone()
    other[:, 2:] = torch.randint(0, K, other[:, 2:].shape)
    assert torch.equal(refiner(cond, cond_mask, codes, code_mask, 2), refiner(cond, cond_mask, other, code_mask, 2))


def test_padding_does_not_change_real_outputs():
    torch.manual_seed(0)
    refiner = tiny(2).eval()
    cond, cond_mask, codes, code_mask = batch(2, b=2, n=6, s=12)
    cond_mask[0, 4:] = False  # item 0: 4 real condition frames
    code_mask[0, 7:] = False  # item 0: 7 real code frames
    reference = refiner(cond, cond_mask, codes, code_mask, 1)

    cond2, codes2 = cond.clone(), codes.clone()
    cond2[0, 4:] = torch.randn(2, COND_DIM) * 100
    codes2[0, :, 7:] = -1  # padded frames may hold any value, even out of range
    changed = refiner(cond2, cond_mask, codes2, code_mask, 1)
    torch.testing.assert_close(changed[0, :7], reference[0, :7])
    torch.testing.assert_close(changed[1], reference[1])

    # The same item alone, unpadded, gives the same real outputs.
    alone = refiner(cond[:1, :4], cond_mask[:1, :4], codes[:1, :, :7], code_mask[:1, :7], 1)
    torch.testing.assert_close(alone[0], reference[0, :7], atol=1e-5, rtol=1e-4)


def test_condition_changes_outputs():
    torch.manual_seed(0)
    refiner = tiny(2).eval()
    cond, cond_mask, codes, code_mask = batch(2)
    a = refiner(cond, cond_mask, codes, code_mask, 1)
    b = refiner(torch.randn_like(cond), cond_mask, codes, code_mask, 1)
    assert not torch.allclose(a, b)


def test_overfits_codebook_two():
    torch.manual_seed(0)
    refiner = tiny(2)
    cond, cond_mask, codes, code_mask = batch(2, b=4, n=5, s=12)
    code_mask[3, 9:] = False
    optim = torch.optim.AdamW(refiner.parameters(), lr=3e-3)
    for _ in range(150):
        loss = refiner.loss(cond, cond_mask, codes, code_mask)
        optim.zero_grad()
        loss.backward()
        optim.step()
    refined = refiner.refine(cond, cond_mask, codes[:, :1], code_mask)
    accuracy = (refined[:, 1] == codes[:, 1])[code_mask].float().mean().item()
    assert accuracy > 0.95, f"codebook-2 accuracy {accuracy:.3f} after 150 steps"
    assert refiner.training  # refine restored the mode it found
    assert (refined[3, 1, 9:] == 0).all()  # padded fine frames are zero


def test_refine_q4_returns_all_codebooks_and_keeps_the_first():
    torch.manual_seed(0)
    refiner = tiny(4, guidance_scale=1.5, cond_dropout=0.2)
    cond, cond_mask, codes, code_mask = batch(4)
    out = refiner.refine(cond, cond_mask, codes[:, :1], code_mask)
    assert out.shape == (3, 4, 10) and out.dtype == codes.dtype
    assert torch.equal(out[:, 0], codes[:, 0])
    assert ((out >= 0) & (out < K)).all()


def test_loss_draws_every_stage():
    torch.manual_seed(0)
    refiner = tiny(4)
    seen = set()
    original = refiner._logits

    def spy(cond, cond_mask, codes, code_mask, stage, drop):
        seen.add(stage)
        return original(cond, cond_mask, codes, code_mask, stage, drop)

    refiner._logits = spy
    cond, cond_mask, codes, code_mask = batch(4, b=1, s=4)
    for _ in range(30):
        refiner.loss(cond, cond_mask, codes, code_mask)
    assert seen == {1, 2, 3}


def test_cond_dropout_only_in_training():
    torch.manual_seed(0)
    refiner = tiny(2, cond_dropout=1.0)
    cond, cond_mask, codes, code_mask = batch(2)
    dropped = refiner(cond, cond_mask, codes, code_mask, 1)
    # With the condition always dropped, training outputs ignore it entirely.
    torch.testing.assert_close(dropped, refiner(torch.randn_like(cond), cond_mask, codes, code_mask, 1))
    refiner.eval()
    assert not torch.allclose(refiner(cond, cond_mask, codes, code_mask, 1), dropped)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c, cm, x, xm: (c[..., :5], cm, x, xm, 1), "cond_dim=12"),
        (lambda c, cm, x, xm: (c, cm[:, :2], x, xm, 1), "cond_mask must be"),
        (lambda c, cm, x, xm: (c, cm, x[:, :1], xm, 2), "Q' >= 2"),
        (lambda c, cm, x, xm: (c, cm, x.float(), xm, 1), "integer codebook indices"),
        (lambda c, cm, x, xm: (c, cm, x, xm[:, :3], 1), "code_mask must be"),
        (lambda c, cm, x, xm: (c, cm, x, xm, 0), "stage must be"),
        (lambda c, cm, x, xm: (c, cm, x, xm, 4), "stage must be"),
        (lambda c, cm, x, xm: (c, cm, x + K, xm, 1), "lie in [0, 16)"),
    ],
)
def test_bad_inputs_raise_clear_errors(mutate, message):
    refiner = tiny(4)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        refiner(*mutate(*batch(4)))


def test_too_long_and_bad_refine_inputs():
    refiner = tiny(2, max_frames=8)
    cond, cond_mask, codes, code_mask = batch(2, s=9)
    with pytest.raises(InputError, match="max_frames=8"):
        refiner(cond, cond_mask, codes, code_mask, 1)
    with pytest.raises(InputError, match=r"\(B, 1, S\)"):
        refiner.refine(cond, cond_mask, codes, code_mask)
    with pytest.raises(InputError, match="Q=2"):
        refiner.loss(cond, cond_mask, codes[:, :1], code_mask)
    with pytest.raises(InputError, match="no real frame"):
        refiner.loss(cond, cond_mask, codes[..., :4], torch.zeros(3, 4, dtype=torch.bool))


def test_unbound_config_is_refused_until_a_pipeline_binds_it():
    config = from_mapping(NARRefinerConfig, {"dim": 32, "num_heads": 4}, where="refiner")
    with pytest.raises(ConfigError, match="num_codebooks, cardinality, cond_dim not set.*Pipeline"):
        NARRefiner(config)
    values = {"decoder.num_codebooks": 2, "decoder.cardinality": K, "backbone.hidden_size": COND_DIM}
    bound = bind(config, values.__getitem__, where="refiner")
    assert NARRefiner(bound).cond_dim == COND_DIM
    with pytest.raises(IncompatibleComponentsError, match="cardinality"):
        bind(attrs.evolve(bound, cardinality=8), values.__getitem__, where="refiner")
    with pytest.raises(ConfigError, match="num_heads"):
        from_mapping(NARRefinerConfig, {"dim": 30, "num_heads": 4}, where="refiner")
    with pytest.raises(ConfigError, match="num_codebooks"):
        from_mapping(NARRefinerConfig, {"num_codebooks": 1}, where="refiner")


def test_checkpoint_round_trip_through_safetensors(tmp_path):
    torch.manual_seed(0)
    refiner = tiny(4).eval()
    cond, cond_mask, codes, code_mask = batch(4)
    state = refiner.checkpoint_state_dict()
    assert "positions" not in state  # derived from the config, not stored
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "refiner.safetensors")

    torch.manual_seed(1)
    restored = tiny(4).eval()
    restored.load_checkpoint_state_dict(load_file(tmp_path / "refiner.safetensors"))
    torch.testing.assert_close(
        restored(cond, cond_mask, codes, code_mask, 3), refiner(cond, cond_mask, codes, code_mask, 3)
    )
    assert torch.equal(restored.refine(cond, cond_mask, codes[:, :1], code_mask),
                       refiner.refine(cond, cond_mask, codes[:, :1], code_mask))

    with pytest.raises(CheckpointError, match="shape mismatch"):
        tiny(4, dim=64).load_checkpoint_state_dict(state)
    with pytest.raises(CheckpointError, match="unexpected"):
        tiny(2).load_checkpoint_state_dict(state)  # Q=4 weights hold heads a Q=2 refiner lacks
