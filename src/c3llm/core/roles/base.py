"""What every component shares: built from one frozen config, weights loaded explicitly."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from c3llm.core.errors import CheckpointError


class Component:
    """Mixin for every role.

    Life cycle, driven by the pipeline builder:

    1. ``component = cls(config)`` — builds the module from its frozen config; no I/O.
    2. ``component.load_pretrained()`` — loads weights the config points at (a local path, or
       a hub id when online); a no-op when the config names none. Fails with
       :class:`~c3llm.core.errors.UnavailableError` when the weights cannot be had.
    3. Role-specific wiring (e.g. ``backbone.add_acoustic_vocabulary``).

    Checkpointing goes through :meth:`checkpoint_state_dict` /
    :meth:`load_checkpoint_state_dict` (tensors, written as safetensors) and
    :meth:`export_assets` (non-tensor files such as a tokenizer).
    """

    config: Any

    def load_pretrained(self) -> None:
        """Load the weights named by the config, if any. Default: nothing to load."""

    def mark_loaded(self) -> None:
        """Record the weights as loaded from the source the config names (call it at the end of
        :meth:`load_pretrained`). While they stay unchanged (no in-place update since), the
        default :meth:`checkpoint_state_dict` holds nothing: a saved pipeline records the
        source's path and reloads from it instead of copying a frozen EnCodec, CLAP or ResNet
        (hundreds of MB) into every checkpoint. Any training step makes them saved again."""
        if isinstance(self, nn.Module):
            self._loaded_versions = _tensor_versions(self)

    def weights_as_loaded(self) -> bool:
        """The weights are still exactly those :meth:`mark_loaded` saw (same tensors, no in-place change)."""
        versions = getattr(self, "_loaded_versions", None)
        return versions is not None and isinstance(self, nn.Module) and versions == _tensor_versions(self)

    def _apply(self, fn, *args, **kwargs):
        """``nn.Module._apply`` (behind ``.to()``, ``.cuda()``, ``.float()``): moving or casting the
        weights as loaded keeps them "as loaded" (a move replaces every buffer, which would
        otherwise count as a change and copy the frozen weights into each checkpoint)."""
        as_loaded = self.weights_as_loaded()
        out = super()._apply(fn, *args, **kwargs)  # type: ignore[misc]
        if as_loaded:
            self.mark_loaded()
        return out

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors a checkpoint must hold to rebuild this component. Default: everything, or
        nothing while the weights are as :meth:`load_pretrained` loaded them (see :meth:`mark_loaded`)."""
        if isinstance(self, nn.Module) and not self.weights_as_loaded():
            return {k: v.detach() for k, v in self.state_dict().items()}
        return {}

    def load_checkpoint_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load tensors written by :meth:`checkpoint_state_dict`; refuse any mismatch."""
        if not isinstance(self, nn.Module) or (not state and self.weights_as_loaded()):
            if state:
                raise CheckpointError(f"{type(self).__name__} holds no tensors but got {len(state)}")
            return
        load_strict(self, state, owner=type(self).__name__)

    def export_assets(self, directory: Path) -> dict[str, Any]:
        """Write non-tensor files (tokenizers, vocabularies) into ``directory``.

        :return: config overrides (paths relative to ``directory``) under which a fresh
            component rebuilt from the saved config finds these files.
        """
        return {}


def state_mismatch(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str | None:
    """What differs between a module's tensors and a checkpoint's (keys, shapes), or ``None``."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(own[k].shape) != tuple(state[k].shape)
    ]
    parts = []
    if wrong:
        parts.append("shape mismatch: " + "; ".join(wrong[:5]))
    if missing:
        parts.append(f"missing {len(missing)} key(s), e.g. {missing[:3]}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} key(s), e.g. {unexpected[:3]}")
    return "; ".join(parts) or None


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, owner: str) -> None:
    """``load_state_dict`` with a message naming missing, unexpected and mis-shaped keys."""
    problem = state_mismatch(module.state_dict(), state)
    if problem:
        raise CheckpointError(f"checkpoint does not match {owner}: {problem}. Was it saved with a different config?")
    module.load_state_dict(dict(state), strict=True)


def _tensor_versions(module: nn.Module) -> dict[str, tuple[int, int]]:
    """Each parameter's and buffer's identity and in-place modification counter."""
    return {k: (id(v), v._version) for k, v in module.state_dict(keep_vars=True).items()}
