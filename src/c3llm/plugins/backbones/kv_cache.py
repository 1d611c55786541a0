"""KV caches of the transformers backbones: which keyword a layer stack takes its cache by,
and the caches decoding uses (a growing ``DynamicCache``, or a ``StaticCache`` preallocated
for the whole generation, written in place each step with no per-step concatenation)."""

from __future__ import annotations

import functools
import inspect
from typing import Any


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


def static_cache(hf_config: Any, max_length: int) -> Any:
    """An empty cache of ``max_length`` positions per row, allocated on the first forward
    (with its batch size, dtype and device) and then written in place."""
    from transformers import StaticCache

    return StaticCache(config=hf_config, max_cache_len=max_length)


def cached_length(past: Any) -> int:
    """Positions already in ``past`` (0 for none)."""
    return 0 if past is None else int(past.get_seq_length())
