"""What trains in a causal-LM backbone: peft's LoRA on the attention projections plus the new
token rows (trainable tokens), only the new rows, or everything."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from torch import nn

from c3llm.core.errors import ConfigError
from c3llm.plugins.backbones.causal_lm_config import CausalLMConfig


def wrap_for_training(model: nn.Module, config: CausalLMConfig, new_token_ids: Sequence[int],
                      tied_head: bool) -> nn.Module:
    """The model with ``config.mode``'s trainable set: ``full`` returns it with every weight
    trainable; ``lora`` / ``frozen`` return a peft model (LoRA + trainable new rows / new rows)."""
    if config.mode == "full":
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, TrainableTokensConfig, get_peft_model

    # Tied head (Gemma): peft ties the head's trainable rows to the embedding's.
    targets = ["embed_tokens"] if tied_head else ["embed_tokens", "lm_head"]
    if config.mode == "lora":
        peft_config = LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_targets), bias="none",
            trainable_token_indices={name: list(new_token_ids) for name in targets},
        )
    else:  # frozen
        peft_config = TrainableTokensConfig(token_indices=list(new_token_ids), target_modules=targets)
    try:
        with warnings.catch_warnings():
            # TrainableTokens does tie the head's rows to the embedding's (tests check the
            # tied logits and the merge); peft's generic warning says otherwise.
            warnings.filterwarnings("ignore", message=".*no implementation exists to tie the adapters")
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
            return get_peft_model(model, peft_config)
    except ValueError as exc:
        if "Target modules" in str(exc):
            raise ConfigError(f"lora_targets {list(config.lora_targets)} match no module of the model: {exc}") from exc
        raise
