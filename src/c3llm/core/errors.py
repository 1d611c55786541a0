"""Typed errors: each says what was wrong and what to do about it.

Everything the framework raises on bad input derives from :class:`C3LLMError`, so the
launcher can turn it into one clear line while a genuine bug still shows a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class C3LLMError(Exception):
    """Base class of every error c3llm raises on purpose."""


class ConfigError(C3LLMError, ValueError):
    """A configuration key is unknown, missing, or has a wrong type or value."""


class PluginError(C3LLMError):
    """Something is wrong with a plugin or the registry."""


class UnknownComponentError(PluginError, KeyError):
    """A component name that no plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DuplicateComponentError(PluginError):
    """Two plugins registered the same name for the same role."""


class PluginImportError(PluginError, ImportError):
    """A plugin module failed to import or to register."""


class IncompatibleComponentsError(C3LLMError, ValueError):
    """Two components of a pipeline do not fit together (dims, vocabularies, rates)."""


class CheckpointError(C3LLMError):
    """A checkpoint is missing, corrupt, or does not match the pipeline it is loaded into."""


class InputError(C3LLMError, ValueError):
    """User data (audio, video, text) cannot be used as given."""


class MediaError(InputError):
    """A media file is missing, empty, corrupt, or in an unsupported format."""


class OutputError(C3LLMError, OSError):
    """An output cannot be written (read-only or full disk, unknown file type); nothing
    partial is left where the output was to go."""


class UnavailableError(C3LLMError, RuntimeError):
    """A feature needs something this machine does not have (weights, Java, network)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""
