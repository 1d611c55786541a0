"""KV caches of the transformers backbones: which keyword a layer stack takes its cache by,
and the caches decoding uses: a growing ``DynamicCache`` (concatenates every step), or one
preallocated for the whole generation and written in place.

The preallocated cache of full-attention models is a :class:`PreallocatedLayer` per layer:
one buffer of ``max_length`` positions, attention reading the filled prefix as a view (no
copy, no attention over empty positions). transformers' ``StaticCache`` (attends over all
``max_length`` positions every step, behind a mask: slower on CPU, BENCHMARKS.md) serves
models with sliding-window or other non-full layers.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer


@functools.cache
def cache_argument(stack_cls: type) -> str:
    """The KV-cache keyword of a transformers layer stack, which outputs use too: ``cache`` in
    recent 5.x releases, ``past_key_values`` in earlier ones (still accepted, deprecated)."""
    params = inspect.signature(stack_cls.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def dynamic_cache(hf_config: Any) -> Any:
    """An empty cache that grows by concatenation (the prompt's forward, beam search)."""
    from transformers import DynamicCache

    return DynamicCache(config=hf_config)


class PreallocatedLayer(DynamicLayer):
    """One layer's keys and values in buffers of ``max_length`` positions, allocated on the
    first update (batch, heads, dtype, device from it) and filled in place; attention gets
    views of the filled prefix, as a ``DynamicLayer`` gives its concatenated tensors."""

    def __init__(self, max_length: int):
        super().__init__()
        self.max_length = max_length
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        batch, heads = key_states.shape[:2]
        self.key_buffer = key_states.new_empty(batch, heads, self.max_length, key_states.shape[-1])
        self.value_buffer = value_states.new_empty(batch, heads, self.max_length, value_states.shape[-1])
        self._views()
        self.is_initialized = True

    def _views(self) -> None:
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.max_length:
            raise ValueError(f"the preallocated KV cache holds {self.max_length} positions; {end} were asked for")
        self.key_buffer[:, :, self.length:end] = key_states
        self.value_buffer[:, :, self.length:end] = value_states
        self.length = end
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.max_length

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.is_initialized:
            rows = beam_idx.to(self.device)
            self.key_buffer = self.key_buffer.index_select(0, rows)
            self.value_buffer = self.value_buffer.index_select(0, rows)
            self._views()

    def crop(self, max_length: int) -> None:
        self.length = min(self.length, max_length if max_length >= 0 else self.length + max_length)
        if self.is_initialized:
            self._views()

    def reset(self) -> None:
        self.length = 0
        if self.is_initialized:
            self._views()


def static_cache(hf_config: Any, max_length: int) -> Any:
    """An empty cache of ``max_length`` positions per row, allocated on the first forward
    (with its batch size, dtype and device) and then written in place."""
    text = hf_config.get_text_config(decoder=True)
    kinds = set(getattr(text, "layer_types", None) or ["full_attention"])
    if kinds == {"full_attention"}:
        return Cache(layers=[PreallocatedLayer(max_length) for _ in range(text.num_hidden_layers)])
    from transformers import StaticCache

    return StaticCache(config=hf_config, max_cache_len=max_length)


def cached_length(past: Any) -> int:
    """Positions already in ``past`` (0 for none)."""
    return 0 if past is None else int(past.get_seq_length())
