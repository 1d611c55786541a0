"""Shared backbone implementation on a transformers causal LM (+ peft for LoRA).

The Gemma and LLaMA plugins differ only in the transformers classes and the tiny preset's
architecture; everything else lives here:

- **weights**: a random-init ``tiny`` preset built in memory, or ``pretrained`` (a local
  Hugging Face directory, or a hub id when online) loaded by :meth:`load_pretrained`;
- **vocabulary**: :meth:`add_acoustic_vocabulary` appends ``<a_0> … <a_{K-1}>`` (contiguous
  ids) and ``<Audio> </Audio> <Video> </Video>`` to tokenizer and embedding (a tied head
  stays tied), then sets up what trains (see :class:`CausalLMConfig.mode`);
- **inputs_embeds splice**: :meth:`embed` is the model's own embedding layer (transformers
  5.x scales Gemma's token embeddings by ``sqrt(D)`` inside it), so ``forward(embed(ids))``
  is the model's forward on ``ids``, and projected features are spliced in unscaled;
- **decoding**: KV cache (preallocated ``StaticCache`` from :meth:`new_cache`, else a growing
  ``DynamicCache``), left padding (positions from the mask), LoRA merged by
  :meth:`prepare_for_inference`, and a head sliced to the rows asked for.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from c3llm.core.errors import (
    C3LLMError,
    CheckpointError,
    ConfigError,
    IncompatibleComponentsError,
    InputError,
)
from c3llm.core.roles.backbone import Backbone, BackboneOutput, SpecialTokens
from c3llm.core.roles.base import state_mismatch
from c3llm.plugins.backbones.adapters import wrap_for_training
from c3llm.plugins.backbones.causal_lm_config import (
    DTYPES,
    CausalLMConfig,
)
from c3llm.plugins.backbones.hf_source import (
    load_pretrained_tokenizer,
    read_hf_config,
    resolve_source,
    unavailable,
)
from c3llm.plugins.backbones.kv_cache import (
    cache_argument,
    cached_length,
    dynamic_cache,
    static_cache,
)
from c3llm.plugins.backbones.vocabulary import grow_token_rows

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PretrainedConfig, PreTrainedModel

log = logging.getLogger(__name__)

#: The modality markers, added right after the acoustic tokens (in this order).
MARKERS: tuple[str, ...] = ("<Audio>", "</Audio>", "<Video>", "</Video>")


def acoustic_token(code: int) -> str:
    """The text form of acoustic code ``code``: ``<a_{code}>``."""
    return f"<a_{code}>"


class CausalLMBackbone(Backbone, nn.Module):
    """A transformers causal LM as the C3LLM backbone (subclasses name the architecture).

    Life cycle: ``cls(config)`` (builds the preset in memory when it needs no file),
    ``load_pretrained()`` (loads ``pretrained`` or ``tokenizer_path``), then
    ``add_acoustic_vocabulary(K)`` exactly once.
    """

    #: ``model_type`` of the transformers config this plugin loads (checked on load).
    model_type: ClassVar[str]
    #: Tiny preset architecture: hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size.
    preset_dims: ClassVar[Mapping[str, int]]

    def __init__(self, config: CausalLMConfig):
        super().__init__()
        self.config = config
        self.model: nn.Module | None = None  # transformers model; a PeftModel once adapters exist
        self._tokenizer: Tokenizer | None = None
        self._base_tokenizer_json: str | None = None  # the tokenizer before our additions
        self._special: SpecialTokens | None = None
        self._new_token_ids: list[int] = []
        self._trainable_names: frozenset[str] = frozenset()  # mode's set: see _checkpoint_tensors
        self._merged = False
        self._tied_head = False  # head shares the embedding's weight (Gemma)
        self._pretrained_hidden_size: int | None = None
        if config.pretrained is None and config.tokenizer_path is None:
            from c3llm.plugins.backbones.text_tokenizer import train_tokenizer

            self._build_preset(train_tokenizer(config.tokenizer_corpus, config.tokenizer_vocab_size))

    # -- architecture hooks (per plugin) ------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def hf_model_class(cls) -> type[PreTrainedModel]:
        """The transformers ``*ForCausalLM`` class."""

    @classmethod
    @abc.abstractmethod
    def preset_hf_config(cls, dims: Mapping[str, int], vocab_rows: int, ids: Mapping[str, int]) -> PretrainedConfig:
        """The transformers config of the random preset (``ids``: bos/eos/pad token ids)."""

    # -- building and loading --------------------------------------------------------------------

    @property
    def hidden_size(self) -> int:  # type: ignore[override]
        """D. Known from the config for the preset; read from ``config.json`` when pretrained."""
        if self.model is not None:
            return int(self._hf().config.get_text_config().hidden_size)
        if self.config.pretrained is None:
            return self._preset_dims()["hidden_size"]
        if self._pretrained_hidden_size is None:
            self._pretrained_hidden_size = int(read_hf_config(self.model_type, str(self.config.pretrained)).get_text_config().hidden_size)
        return self._pretrained_hidden_size

    def _preset_dims(self) -> dict[str, int]:
        dims = dict(self.preset_dims)
        for key in dims:
            value = getattr(self.config, key)
            if value is not None:
                dims[key] = value
        if dims["hidden_size"] % dims["num_heads"]:
            raise ConfigError(
                f"hidden_size {dims['hidden_size']} must be divisible by num_heads {dims['num_heads']}"
            )
        if dims["num_heads"] % dims["num_kv_heads"]:
            raise ConfigError(
                f"num_heads {dims['num_heads']} must be divisible by num_kv_heads {dims['num_kv_heads']}"
            )
        return dims

    def _build_preset(self, tokenizer: Tokenizer) -> None:
        """Random-init the preset around ``tokenizer`` (which must have <bos> <eos> <pad>)."""
        from c3llm.plugins.backbones.text_tokenizer import BOS, EOS, PAD

        ids = {}
        for key, token in (("bos", BOS), ("eos", EOS), ("pad", PAD)):
            ids[key] = tokenizer.token_to_id(token)
            if ids[key] is None:
                raise CheckpointError(
                    f"the preset tokenizer has no {token} token; use a tokenizer written by "
                    "export_assets or trained by c3llm.plugins.backbones.text_tokenizer"
                )
        rows = tokenizer.get_vocab_size(with_added_tokens=True)
        if self.config.vocab_rows is not None:
            if self.config.vocab_rows < rows:
                raise ConfigError(
                    f"vocab_rows = {self.config.vocab_rows} is smaller than the tokenizer's "
                    f"{rows} tokens; raise it or leave it unset"
                )
            rows = self.config.vocab_rows
        hf_config = self.preset_hf_config(self._preset_dims(), rows, ids)
        model = self.hf_model_class()(hf_config)
        self._install(model.to(DTYPES[self.config.dtype]), tokenizer)

    def _install(self, model: nn.Module, tokenizer: Tokenizer) -> None:
        self.model = model
        self._tokenizer = tokenizer
        self._base_tokenizer_json = tokenizer.to_str()
        self._tied_head = self._head_is_tied()
        # Until the acoustic vocabulary sets up training, nothing trains.
        self.model.requires_grad_(False)

    def load_pretrained(self) -> None:
        """Load ``pretrained`` (model + tokenizer) or the preset's ``tokenizer_path``."""
        if self._special is not None:
            raise C3LLMError(
                "load_pretrained() must come before add_acoustic_vocabulary(); build a new "
                "backbone to load other weights"
            )
        cfg = self.config
        if cfg.pretrained is None:
            if cfg.tokenizer_path is not None:
                from c3llm.plugins.backbones.text_tokenizer import load_tokenizer

                self._build_preset(load_tokenizer(cfg.tokenizer_path))
            return
        source = resolve_source(str(cfg.pretrained))
        hf_config = read_hf_config(self.model_type, str(cfg.pretrained))
        kind = getattr(hf_config, "model_type", None)
        if kind != self.model_type:
            raise IncompatibleComponentsError(
                f"backbone.pretrained = {cfg.pretrained!r} holds a {kind!r} model, but this backbone "
                f"loads {self.model_type!r} models; choose the backbone plugin for {kind!r}"
            )
        try:
            model = self.hf_model_class().from_pretrained(source, dtype=DTYPES[cfg.dtype])
        except OSError as exc:
            raise unavailable(self.model_type, str(cfg.pretrained), exc) from exc
        tokenizer = load_pretrained_tokenizer(self.model_type, str(cfg.pretrained), source, cfg.tokenizer_path)
        log.info("loaded %s backbone from %s (%d parameters)", self.model_type, source,
                 sum(p.numel() for p in model.parameters()))
        self._install(model, tokenizer)

    # -- state checks -----------------------------------------------------------------------------

    def _require_model(self) -> None:
        if self.model is None:
            raise C3LLMError(
                f"the {self.model_type} backbone is not loaded yet: call load_pretrained() first "
                "(the pipeline does this right after building it)"
            )

    def _require_vocabulary(self) -> None:
        self._require_model()
        if self._special is None:
            raise C3LLMError(
                "the acoustic vocabulary is not set up yet: call add_acoustic_vocabulary(K) with "
                "the codec's codebook size first"
            )

    def _hf(self) -> PreTrainedModel:
        """The transformers model underneath any peft wrapper (LoRA layers injected in place)."""
        self._require_model()
        from peft import PeftModel

        return self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model

    def _head_is_tied(self) -> bool:
        """Whether head and embedding share one weight (checked on plain modules, before peft
        wraps them or after merging)."""
        hf = self._hf()
        return hf.get_output_embeddings().weight is hf.get_input_embeddings().weight

    # -- vocabulary ---------------------------------------------------------------------------------

    @property
    def special(self) -> SpecialTokens:
        self._require_vocabulary()
        return self._special

    @property
    def tokenizer(self) -> Tokenizer:
        """The ``tokenizers`` tokenizer (with the acoustic tokens once they are added)."""
        self._require_model()
        return self._tokenizer

    def add_acoustic_vocabulary(self, acoustic_size: int) -> None:
        self._require_model()
        if self._special is not None:
            raise C3LLMError(
                f"add_acoustic_vocabulary() was already called (acoustic_size = "
                f"{self._special.acoustic_size}); it must be called exactly once per backbone"
            )
        if isinstance(acoustic_size, bool) or not isinstance(acoustic_size, int) or acoustic_size < 1:
            raise IncompatibleComponentsError(
                f"acoustic_size must be a positive integer (the codec's codebook size), got {acoustic_size!r}"
            )
        from tokenizers import AddedToken

        tok = self._tokenizer
        names = [acoustic_token(c) for c in range(acoustic_size)] + list(MARKERS)
        present = [n for n in names if tok.token_to_id(n) is not None]
        if present:
            raise IncompatibleComponentsError(
                f"the tokenizer already has {present[:3]}: it was saved after the acoustic "
                "vocabulary was added. Use the tokenizer export_assets writes (the base one)."
            )
        tok.add_special_tokens([AddedToken(n, special=True, normalized=False) for n in names])
        new_ids = [tok.token_to_id(n) for n in names]
        offset = new_ids[0]
        if new_ids != list(range(offset, offset + len(names))):
            raise IncompatibleComponentsError("the tokenizer gave the acoustic tokens non-contiguous ids")

        hf = self._hf()
        grow_token_rows(hf, offset + len(names))  # new rows = the mean row (cheap at 256k rows)
        if self._tied_head and not self._head_is_tied():
            hf.tie_weights()
        self._new_token_ids = new_ids
        ids = self._special_ids()
        self._special = SpecialTokens(
            bos=ids["bos"], eos=ids["eos"], pad=ids["pad"],
            audio_start=new_ids[acoustic_size], audio_end=new_ids[acoustic_size + 1],
            video_start=new_ids[acoustic_size + 2], video_end=new_ids[acoustic_size + 3],
            acoustic_offset=offset, acoustic_size=acoustic_size,
        )
        self._setup_training()
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        log.info("added %d acoustic tokens at id %d; mode %s trains %d parameters",
                 acoustic_size, offset, self.config.mode, trainable)

    def _special_ids(self) -> dict[str, int | None]:
        cfg = self._hf().config.get_text_config()

        def first(value: Any) -> int | None:
            if isinstance(value, (list, tuple)):
                return int(value[0]) if value else None
            return None if value is None else int(value)

        bos, eos, pad = first(cfg.bos_token_id), first(cfg.eos_token_id), first(cfg.pad_token_id)
        if eos is None:
            raise CheckpointError("the model config names no eos_token_id; set it in config.json")
        return {"bos": bos, "eos": eos, "pad": eos if pad is None else pad}

    def _setup_training(self) -> None:
        """Mark what trains: see ``CausalLMConfig.mode``."""
        self.model = wrap_for_training(self.model, self.config, self._new_token_ids, self._tied_head)
        self._trainable_names = frozenset(n for n, p in self.model.named_parameters() if p.requires_grad)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        self._require_model()
        if isinstance(texts, str):
            raise InputError("tokenize() takes a list of texts, got a single string; wrap it in a list")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"text {i} is empty or not a string ({text!r}); give non-empty captions")
        from c3llm.plugins.backbones.text_tokenizer import encode_plain
        return encode_plain(self._tokenizer, list(texts), self._special.control_ids() if self._special else ())

    def detokenize(self, ids: Sequence[int]) -> str:
        self._require_model()
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        known = [int(i) for i in ids if 0 <= int(i) < size]
        return self._tokenizer.decode(known, skip_special_tokens=True)

    # -- tensors ------------------------------------------------------------------------------------

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        self._require_model()
        if ids.dtype not in (torch.int64, torch.int32) or ids.dim() != 2:
            raise InputError(f"embed() takes (B, T) integer ids, got {tuple(ids.shape)} {ids.dtype}")
        layer = self._hf().get_input_embeddings()
        rows = layer.weight.shape[0] if hasattr(layer, "weight") else layer.base_layer.weight.shape[0]
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= rows):
            raise InputError(f"token ids must lie in [0, {rows}), got [{int(ids.min())}, {int(ids.max())}]")
        return layer(ids)  # (B, T, D), scaled exactly as the model scales its own inputs

    def forward(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        position_ids: torch.Tensor | None = None,
        past: Any = None,
        use_cache: bool = False,
    ) -> BackboneOutput:
        self._require_model()
        if embeds.dim() != 3 or embeds.shape[-1] != self.hidden_size:
            raise InputError(f"embeds must be (B, T, {self.hidden_size}), got {tuple(embeds.shape)}")
        batch, steps = embeds.shape[:2]
        past_len = cached_length(past)
        if attention_mask.shape != (batch, past_len + steps):
            raise InputError(
                f"attention_mask must be (B, T_past + T) = ({batch}, {past_len + steps}) covering the "
                f"cached and the new positions, got {tuple(attention_mask.shape)}"
            )
        if position_ids is None:
            # Left padding: a row's first real token is position 0.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -steps:]  # (B, T)
        if use_cache and past is None:
            past = dynamic_cache(self._hf().config)
        stack = self._hf().get_decoder()  # the transformer layers without the head
        cache_key = cache_argument(type(stack))
        out = stack(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **{cache_key: past},
        )
        return BackboneOutput(hidden=out.last_hidden_state, past=getattr(out, cache_key) if use_cache else None)

    def new_cache(self, batch_size: int, max_length: int) -> Any:
        self._require_model()
        return static_cache(self._hf().config, max_length)

    def logits(self, hidden: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        self._require_model()
        head = self._hf().get_output_embeddings()
        if rows is None:
            return head(hidden)  # (B, T, V)
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise InputError(f"rows must be a contiguous slice, e.g. slice(a, b), got {rows!r}")
        if isinstance(head, nn.Linear):  # plain (merged) head: compute only the rows asked for
            bias = head.bias[rows] if head.bias is not None else None
            return F.linear(hidden, head.weight[rows], bias)  # (B, T, len(rows))
        # peft-wrapped head: its effective rows exist only inside its forward.
        return head(hidden)[..., rows]

    def prepare_for_inference(self) -> None:
        """Merge LoRA and the trained token rows into a plain model, eval mode, no grads."""
        self._require_model()
        from peft import PeftModel

        if isinstance(self.model, PeftModel):
            self.model = self.model.merge_and_unload()
            if self._tied_head and not self._head_is_tied():
                self.model.tie_weights()
            self._merged = True
        self.model.eval()
        self.model.requires_grad_(False)

    # -- checkpoints --------------------------------------------------------------------------------

    def _checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """Live tensors a checkpoint holds: all for a random preset, else the set ``mode`` trains as
        add_acoustic_vocabulary set it (a later freeze must not drop it); tied weights once."""
        self._require_model()
        if self._merged:
            raise CheckpointError(
                "this backbone was merged for inference by prepare_for_inference(); its "
                "checkpoint no longer matches a trainable backbone. Save checkpoints before merging."
            )
        everything = self.config.pretrained is None
        return {n: p for n, p in self.model.named_parameters() if everything or n in self._trainable_names}

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self._checkpoint_tensors().items()}

    def load_checkpoint_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        own = self._checkpoint_tensors()
        problem = state_mismatch(own, state)
        if problem:
            raise CheckpointError(
                f"checkpoint does not match the {self.model_type} backbone (mode {self.config.mode!r}): {problem}"
                ". Was it saved with a different config (mode, lora_r, preset dims, acoustic size)?"
            )
        with torch.no_grad():
            for name, tensor in own.items():
                tensor.copy_(state[name])

    def export_assets(self, directory: Path) -> dict[str, Any]:
        """Write the base tokenizer (without the acoustic tokens, which are re-added) as
        ``tokenizer.json``."""
        self._require_model()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "tokenizer.json").write_text(self._base_tokenizer_json, encoding="utf-8")
        return {"tokenizer_path": "tokenizer.json"}

    def extra_repr(self) -> str:
        source = self.config.pretrained or f"preset {self.config.preset!r}"
        return f"{self.model_type}, {source}, mode={self.config.mode!r}, merged={self._merged}"

