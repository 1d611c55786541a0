"""Loading a Hugging Face directory through ``pretrained``; offline hub ids; registration."""

from __future__ import annotations

import pytest
import torch
from backbone_helpers import ACOUSTIC, PLUGINS, build
from transformers import GemmaConfig as HFGemmaConfig
from transformers import GemmaForCausalLM, LlamaConfig, LlamaForCausalLM

from c3llm.core.config import from_mapping
from c3llm.core.errors import ConfigError, IncompatibleComponentsError, UnavailableError
from c3llm.plugins.backbones import gemma, llama
from c3llm.plugins.backbones.text_tokenizer import save_tokenizer, train_tokenizer
from c3llm.testing.contracts import check_backbone

CAPTION = "a high beep repeats three times"


@pytest.fixture
def gemma_dir(tmp_path):
    """A scaled-down Gemma written the way Hugging Face ships one (config, safetensors, tokenizer.json)."""
    tokenizer = train_tokenizer(vocab_size=256)
    config = HFGemmaConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    model = GemmaForCausalLM(config).eval()
    model.save_pretrained(tmp_path / "gemma")
    save_tokenizer(tokenizer, tmp_path / "gemma" / "tokenizer.json")
    return tmp_path / "gemma", model, tokenizer


def test_loads_a_local_hugging_face_directory(gemma_dir, tmp_path):
    directory, reference, tokenizer = gemma_dir
    backbone = build("gemma", acoustic=None, pretrained=str(directory))
    assert backbone.hidden_size == 32
    ids = torch.tensor(backbone.tokenize([CAPTION]))
    assert ids[0].tolist() == tokenizer.encode(CAPTION).ids
    with torch.no_grad():
        ours = backbone.logits(backbone(backbone.embed(ids), torch.ones_like(ids)).hidden)
        torch.testing.assert_close(ours, reference(input_ids=ids).logits, rtol=0, atol=1e-5)

    backbone.add_acoustic_vocabulary(ACOUSTIC)
    state = backbone.checkpoint_state_dict()
    # A pretrained base is rebuilt from its directory: the checkpoint holds only what trains.
    assert state and all("lora_" in k or "trainable_tokens_delta" in k for k in state)
    assert sum(v.numel() for v in state.values()) < sum(p.numel() for p in backbone.parameters()) // 4
    with torch.no_grad():
        for p in backbone.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
        state = backbone.checkpoint_state_dict()
        assets = backbone.export_assets(tmp_path / "assets")

        again = build("gemma", pretrained=str(directory),
                      tokenizer_path=str(tmp_path / "assets" / assets["tokenizer_path"]))
        again.load_checkpoint_state_dict(state)
        backbone.eval(), again.eval()
        ids = torch.tensor([ids[0].tolist() + [backbone.special.acoustic_offset + 3]])
        torch.testing.assert_close(
            again.logits(again(again.embed(ids), torch.ones_like(ids)).hidden),
            backbone.logits(backbone(backbone.embed(ids), torch.ones_like(ids)).hidden), rtol=0, atol=0,
        )


def test_wrong_architecture_is_refused(gemma_dir):
    directory, _, _ = gemma_dir
    with pytest.raises(IncompatibleComponentsError, match="holds a 'gemma' model.*'llama'"):
        build("llama", acoustic=None, pretrained=str(directory))


def test_offline_hub_id_says_what_to_do(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    backbone = PLUGINS["gemma"][0](PLUGINS["gemma"][1](pretrained="google/gemma-2b"))
    with pytest.raises(UnavailableError, match=r"download it elsewhere.*backbone.pretrained = DIR"):
        backbone.load_pretrained()
    with pytest.raises(UnavailableError, match="directory not found"):
        build("llama", acoustic=None, pretrained="/nonexistent/llama-3-8b")


def test_config_is_strict():
    cfg = from_mapping(gemma.GemmaConfig, {"mode": "full", "lora_targets": ["q_proj", "v_proj"]})
    assert cfg.lora_targets == ("q_proj", "v_proj")
    with pytest.raises(ConfigError, match="only shape the random preset"):
        from_mapping(gemma.GemmaConfig, {"pretrained": "/models/gemma-2b", "hidden_size": 64})
    with pytest.raises(ConfigError, match="mode must be one of"):
        from_mapping(llama.LlamaConfig, {"mode": "lora-ish"})
    with pytest.raises(ConfigError, match="lora_targets must not contain"):
        from_mapping(llama.LlamaConfig, {"lora_targets": ["q_proj", "lm_head"]})


def test_plugins_register_and_meet_the_contract(plugin):
    seen = {}
    module = {"gemma": gemma, "llama": llama}[plugin]
    module.register_backbones(lambda name, cls, cfg, description="": seen.update({name: (cls, cfg)}))
    assert seen == {plugin: PLUGINS[plugin]}
    check_backbone(build(plugin, acoustic=None), acoustic_size=ACOUSTIC)


def test_llama_head_is_untied():
    backbone = build("llama", acoustic=None)
    hf = backbone._hf()
    assert isinstance(hf, LlamaForCausalLM)
    assert isinstance(hf.config, LlamaConfig) and not backbone._tied_head
