"""Plugin ``gemma``: Gemma (the paper's Gemma-2B) as the backbone, LoRA via peft.

Gemma ties its output head to the token embedding and scales token embeddings by
``sqrt(hidden_size)`` inside the embedding layer (transformers 5.x); both survive the acoustic
vocabulary (see :mod:`c3llm.plugins.backbones.causal_lm`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import attrs

from c3llm.core.hookspecs import hookimpl
from c3llm.plugins.backbones.causal_lm import CausalLMBackbone, CausalLMConfig


@attrs.frozen(kw_only=True)
class GemmaConfig(CausalLMConfig):
    """Config of the ``gemma`` backbone (keys: see :class:`CausalLMConfig`)."""


class GemmaBackbone(CausalLMBackbone):
    """``GemmaForCausalLM`` + peft; tiny preset: multi-query attention and a tied head like Gemma-2B."""

    model_type: ClassVar[str] = "gemma"
    preset_dims: ClassVar[Mapping[str, int]] = {
        "hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 1, "intermediate_size": 128,
    }

    @classmethod
    def hf_model_class(cls):
        from transformers import GemmaForCausalLM

        return GemmaForCausalLM

    @classmethod
    def preset_hf_config(cls, dims, vocab_rows, ids):
        from transformers import GemmaConfig as HFGemmaConfig

        return HFGemmaConfig(
            vocab_size=vocab_rows,
            hidden_size=dims["hidden_size"],
            intermediate_size=dims["intermediate_size"],
            num_hidden_layers=dims["num_layers"],
            num_attention_heads=dims["num_heads"],
            num_key_value_heads=dims["num_kv_heads"],
            head_dim=dims["hidden_size"] // dims["num_heads"],
            max_position_embeddings=8192,
            bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"],
            tie_word_embeddings=True,
        )


@hookimpl
def register_backbones(register):
    register("gemma", GemmaBackbone, GemmaConfig,
             description="Gemma causal LM (transformers) with LoRA (peft); random tiny preset or a local checkpoint")
