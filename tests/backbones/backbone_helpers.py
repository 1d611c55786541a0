"""Tiny backbones for the backbone tests: one table, every test runs over both plugins."""

from __future__ import annotations

from c3llm.plugins.backbones.gemma import GemmaBackbone, GemmaConfig
from c3llm.plugins.backbones.llama import LlamaBackbone, LlamaConfig

#: plugin name -> (component class, config class): swapping Gemma for LLaMA is this row only.
PLUGINS = {"gemma": (GemmaBackbone, GemmaConfig), "llama": (LlamaBackbone, LlamaConfig)}
ACOUSTIC = 16


def build(plugin: str, *, acoustic: int | None = ACOUSTIC, **overrides):
    """Build, load and (unless ``acoustic`` is None) extend a tiny backbone."""
    component_cls, config_cls = PLUGINS[plugin]
    backbone = component_cls(config_cls(**overrides))
    backbone.load_pretrained()
    if acoustic is not None:
        backbone.add_acoustic_vocabulary(acoustic)
    return backbone
