"""The config shared by the transformers causal-LM backbones (one subclass per plugin)."""

from __future__ import annotations

import attrs
import torch

from c3llm.core.config import field, in_range, one_of

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


#: Modules whose new rows train through peft's trainable tokens, never through LoRA.
EMBEDDING_MODULES = ("embed_tokens", "lm_head")


@attrs.frozen(kw_only=True)
class CausalLMConfig:
    """Config shared by the transformers causal-LM backbones (one subclass per plugin)."""

    pretrained: str | None = field(
        None,
        help="local Hugging Face model directory (or a hub id when online); unset: the random "
        "`preset`. Not resolved against the config folder, so hub ids pass through: give an "
        "absolute path for local directories.",
    )
    preset: str = field("tiny", help="random-init architecture used when `pretrained` is unset",
                        validator=one_of("tiny"))
    hidden_size: int | None = field(None, help="preset width D (unset: the plugin's tiny default)",
                                    validator=in_range(8))
    num_layers: int | None = field(None, help="preset transformer layers", validator=in_range(1))
    num_heads: int | None = field(None, help="preset attention heads", validator=in_range(1))
    num_kv_heads: int | None = field(None, help="preset key/value heads (grouped-query attention)",
                                     validator=in_range(1))
    intermediate_size: int | None = field(None, help="preset MLP width", validator=in_range(1))
    vocab_rows: int | None = field(
        None,
        help="preset embedding/head rows, at least the tokenizer's size (unset: exactly the "
        "tokenizer's size); e.g. 256000 to give a tiny model Gemma's head cost",
        validator=in_range(1),
    )
    mode: str = field(
        "lora",
        help="'lora': LoRA on `lora_targets` + the new token rows train, all else frozen; "
        "'full': every weight trains; 'frozen': only the new token rows train",
        validator=one_of("lora", "full", "frozen"),
    )
    lora_r: int = field(8, help="LoRA rank", validator=in_range(1))
    lora_alpha: float = field(16.0, help="LoRA scaling numerator (scale = alpha / r)",
                              validator=in_range(0.0, low_open=True))
    lora_dropout: float = field(0.05, help="dropout on the LoRA input", validator=in_range(0.0, 1.0))
    lora_targets: tuple[str, ...] = field(
        ("q_proj", "k_proj", "v_proj", "o_proj"),
        help="module names LoRA wraps (default: the attention projections)",
    )
    tokenizer_path: str | None = field(
        None,
        help="tokenizer.json to use (written by export_assets); unset: the pretrained "
        "directory's, or one trained on `tokenizer_corpus` for the preset",
        path=True,
    )
    tokenizer_corpus: tuple[str, ...] = field(
        (), help="captions the preset tokenizer is trained on (empty: a built-in corpus)"
    )
    tokenizer_vocab_size: int = field(512, help="largest vocabulary of the trained preset tokenizer",
                                      validator=in_range(64))
    dtype: str = field("float32", help="weight dtype", validator=one_of(*DTYPES))

    def __attrs_post_init__(self) -> None:
        if not self.lora_targets:
            raise ValueError("lora_targets must name at least one module, e.g. ['q_proj', 'v_proj']")
        clash = [t for t in self.lora_targets if t in EMBEDDING_MODULES]
        if clash:
            raise ValueError(
                f"lora_targets must not contain {clash}: the new token rows of the embedding and "
                "head already train (trainable tokens); use mode = 'full' to train them entirely"
            )
        if self.pretrained is not None:
            dims = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "vocab_rows")
            given = [d for d in dims if getattr(self, d) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)} only shape the random preset, but pretrained = "
                    f"{self.pretrained!r} fixes the architecture; remove them or unset pretrained"
                )
