"""Plugin ``llama``: LLaMA (e.g. LLaMA-3) as the backbone, LoRA via peft.

The swap proof: the same code as :mod:`c3llm.plugins.backbones.gemma`, only the transformers
classes and the preset differ. LLaMA's output head is untied, so its new rows train beside the
embedding's (both through peft's trainable tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs

from c3llm.core.hookspecs import hookimpl
from c3llm.plugins.backbones.causal_lm import CausalLMBackbone, CausalLMConfig


@attrs.frozen(kw_only=True)
class LlamaConfig(CausalLMConfig):
    """Config of the ``llama`` backbone (keys: see :class:`CausalLMConfig`)."""


class LlamaBackbone(CausalLMBackbone):
    """``LlamaForCausalLM`` + peft; tiny preset: grouped-query attention and an untied head like LLaMA-3."""

    model_type: ClassVar[str] = "llama"
    preset_dims: ClassVar[Mapping[str, int]] = {
        "hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128,
    }

    @classmethod
    def hf_model_class(cls):
        from transformers import LlamaForCausalLM

        return LlamaForCausalLM

    @classmethod
    def preset_hf_config(cls, dims, vocab_rows, ids):
        from transformers import LlamaConfig as HFLlamaConfig

        return HFLlamaConfig(
            vocab_size=vocab_rows,
            hidden_size=dims["hidden_size"],
            intermediate_size=dims["intermediate_size"],
            num_hidden_layers=dims["num_layers"],
            num_attention_heads=dims["num_heads"],
            num_key_value_heads=dims["num_kv_heads"],
            max_position_embeddings=8192,
            bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"],
            tie_word_embeddings=False,
        )


@hookimpl
def register_backbones(register):
    register("llama", LlamaBackbone, LlamaConfig,
             description="LLaMA causal LM (transformers) with LoRA (peft); random tiny preset or a local checkpoint")
