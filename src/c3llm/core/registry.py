"""The plugin host: loads plugins lazily, collects their components, builds them by name.

Plugins come from two places, both loaded only when the registry is first needed:

- the entry-point group ``c3llm`` of every installed distribution (built-ins declare
  themselves there too, exactly like a third-party package);
- :data:`BUILTIN_PLUGINS`, so a source checkout works before it is installed.

A plugin can be blocked by its entry-point name (``c3llm-run -p no:NAME`` or
``C3LLM_DISABLE_PLUGINS=NAME,OTHER``).

Containment: a third-party plugin that fails to import, or whose ``register_*`` hook
raises, is reported once (a warning naming it, its distribution and how to block it) and
skipped; commands that do not need it run as usual, and asking for a component nobody else
registered names the broken plugin. A hook the host does not define (``register_encoderz``)
is an error naming the plugin, its distribution and how to block it. Built-ins are never
skipped: their failure is a bug.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pluggy

from c3llm.core import hookspecs
from c3llm.core.config import bind, from_mapping
from c3llm.core.errors import (
    ConfigError,
    DuplicateComponentError,
    PluginError,
    PluginImportError,
    UnknownComponentError,
    did_you_mean,
)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "c3llm"
DISABLE_ENV = "C3LLM_DISABLE_PLUGINS"

#: Built-in plugins: entry-point name -> module. Mirrors ``[project.entry-points.c3llm]``.
BUILTIN_PLUGINS: dict[str, str] = {
    "encodec": "c3llm.plugins.decoders.encodec",
    "melvq": "c3llm.plugins.decoders.melvq",
    "mel-rvq": "c3llm.plugins.decoders.mel_rvq",
    "logmel": "c3llm.plugins.encoders.logmel",
    "fad": "c3llm.plugins.metrics.frechet",
    "kl": "c3llm.plugins.metrics.kl",
    "isc": "c3llm.plugins.metrics.inception_score",
    "onset": "c3llm.plugins.metrics.onset",
    "cider-d": "c3llm.plugins.metrics.cider",
    "spice": "c3llm.plugins.metrics.spice",
    "synth-metrics": "c3llm.plugins.metrics.synthetic",
    "gemma": "c3llm.plugins.backbones.gemma",
    "llama": "c3llm.plugins.backbones.llama",
    "nar": "c3llm.plugins.refiners.nar",
    "audiocaps": "c3llm.plugins.datasets.audiocaps",
    "clotho": "c3llm.plugins.datasets.clotho",
    "vggsound": "c3llm.plugins.datasets.vggsound",
    "vas": "c3llm.plugins.datasets.vas",
    "synthetic": "c3llm.plugins.datasets.synthetic",
    "clap": "c3llm.plugins.encoders.clap",
    "rgb-flow": "c3llm.plugins.encoders.rgb_flow",
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@attrs.frozen(kw_only=True)
class ComponentSpec:
    """One registered component and where it came from."""

    role: str
    name: str
    component_cls: type
    config_cls: type
    plugin: str
    distribution: str | None
    version: str | None
    description: str = ""

    @property
    def provider(self) -> str:
        """``plugin (distribution version)`` for messages and listings."""
        if self.distribution:
            return f"{self.plugin} ({self.distribution} {self.version})"
        return self.plugin


class Registry:
    """Components by role and name, with the plugin that provided each."""

    def __init__(self, manager: pluggy.PluginManager, origins: Mapping[str, tuple[str | None, str | None]],
                 broken: Mapping[str, str] | None = None):
        self._specs: dict[str, dict[str, ComponentSpec]] = {role: {} for role in hookspecs.ROLE_HOOKS}
        self.manager = manager
        #: third-party plugins skipped because they failed to load: name -> why (see module doc)
        self.broken: dict[str, str] = dict(broken or {})
        for role, hook_name in hookspecs.ROLE_HOOKS.items():
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                if impl.plugin_name in self.broken:
                    continue
                dist, version = origins.get(impl.plugin_name, (None, None))
                callback = self._callback(role, impl.plugin_name, dist, version)
                try:
                    impl.function(register=callback)
                except PluginError:
                    raise
                except Exception as exc:  # a plugin's bug: name the plugin
                    where = f"{impl.plugin_name}" + (f" from {dist} {version}" if dist else "")
                    message = f"plugin {where} failed in {hook_name}: {type(exc).__name__}: {exc}"
                    if dist == "c3llm":
                        raise PluginImportError(message) from exc
                    self._skip(impl.plugin_name, message)

    def _skip(self, plugin: str, message: str) -> None:
        """Drop a third-party plugin that failed while registering (all its components)."""
        for table in self._specs.values():
            for name in [n for n, s in table.items() if s.plugin == plugin]:
                del table[name]
        self.broken[plugin] = message
        log.warning("%s; skipped (block it with -p no:%s / %s=%s)", message, plugin, DISABLE_ENV, plugin)

    def _callback(self, role: str, plugin: str, dist: str | None, version: str | None) -> Callable:
        from c3llm.core.roles import CONTRACTS

        contract = CONTRACTS[role]

        def register(name: str, component_cls: type, config_cls: type, *, description: str = "") -> None:
            who = f"plugin {plugin!r}"
            if not isinstance(name, str) or not _NAME.match(name):
                raise PluginError(f"{who} registered {role} name {name!r}: use lowercase letters, digits, '.', '_' or '-'")
            if not (isinstance(component_cls, type) and issubclass(component_cls, contract)):
                raise PluginError(
                    f"{who} registered {role} {name!r} with {component_cls!r}, which does not "
                    f"subclass the {contract.__module__}.{contract.__name__} contract"
                )
            if not (isinstance(config_cls, type) and attrs.has(config_cls)):
                raise PluginError(f"{who} registered {role} {name!r} with config {config_cls!r}, which is not an attrs class")
            spec = ComponentSpec(
                role=role, name=name, component_cls=component_cls, config_cls=config_cls,
                plugin=plugin, distribution=dist, version=version, description=description,
            )
            existing = self._specs[role].get(name)
            if existing is not None:
                raise DuplicateComponentError(
                    f"{role} {name!r} is registered twice: by {existing.provider} and by {spec.provider}. "
                    f"Uninstall one, or block one with -p no:PLUGIN / {DISABLE_ENV}."
                )
            self._specs[role][name] = spec

        return register

    # -- queries --------------------------------------------------------------------------

    def names(self, role: str) -> list[str]:
        return sorted(self._role(role))

    def specs(self, role: str | None = None) -> list[ComponentSpec]:
        roles = [role] if role else list(self._specs)
        return [self._specs[r][n] for r in roles for n in sorted(self._role(r))]

    def get(self, role: str, name: str) -> ComponentSpec:
        table = self._role(role)
        if name not in table:
            available = ", ".join(sorted(table)) or "none"
            broken = "".join(f" Plugin {p!r} failed to load and may provide it: {why}." for p, why in
                             sorted(self.broken.items()))
            raise UnknownComponentError(
                f"unknown {role} {name!r}.{did_you_mean(name, table)} Available: {available}. "
                f"`c3llm-run plugins` lists every component.{broken}"
            )
        return table[name]

    def _role(self, role: str) -> dict[str, ComponentSpec]:
        if role not in self._specs:
            raise UnknownComponentError(
                f"unknown role {role!r}.{did_you_mean(role, self._specs)} Roles: {', '.join(self._specs)}"
            )
        return self._specs[role]

    # -- building -------------------------------------------------------------------------

    def make_config(self, role: str, spec: str | Mapping[str, Any], *, where: str = "",
                    base_dir: Path | None = None) -> tuple[ComponentSpec, Any]:
        """Resolve ``"name"`` or ``{"name": ..., **params}`` to (spec, validated config)."""
        where = where or role
        if isinstance(spec, str):
            name, params = spec, {}
        elif isinstance(spec, Mapping):
            params = dict(spec)
            name = params.pop("name", None)
            if not isinstance(name, str):
                raise ConfigError(f"{where}: needs name = \"<registered {role}>\", got {name!r}")
        else:
            raise ConfigError(f"{where}: expected a {role} name or a table with 'name', got {spec!r}")
        entry = self.get(role, name)
        return entry, from_mapping(entry.config_cls, params, where=where, base_dir=base_dir)

    def build(self, role: str, spec: str | Mapping[str, Any], *, where: str = "",
              base_dir: Path | None = None, lookup: Callable[[str], Any] | None = None) -> Any:
        """Build a component (no I/O); ``lookup`` fills the config's bound fields."""
        entry, config = self.make_config(role, spec, where=where, base_dir=base_dir)
        if lookup is not None:
            config = bind(config, lookup, where=where or role)
        component = entry.component_cls(config)
        component.registry_spec = entry
        return component


# ---------------------------------------------------------------------------------------
# Loading


def disabled_from_env() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def get_plugin_manager(disabled: Iterable[str] = (), broken: dict[str, str] | None = None
                       ) -> tuple[pluggy.PluginManager, dict]:
    """A plugin manager with every installed and built-in plugin not blocked.

    :param broken: filled with the third-party plugins skipped because they failed to
        import (name -> why), each reported once as a warning.
    :return: the manager and ``{plugin name: (distribution, version)}``.
    """
    blocked = set(disabled) | disabled_from_env()
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    origins: dict[str, tuple[str | None, str | None]] = {}
    for name in blocked:
        manager.set_blocked(name)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if manager.is_blocked(ep.name) or manager.has_plugin(ep.name):
            continue
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        try:
            plugin = ep.load()
        except Exception as exc:
            message = (f"plugin {ep.name!r} ({ep.value}) from distribution {dist} {version} failed to "
                       f"import: {type(exc).__name__}: {exc}")
            if broken is None or dist == "c3llm":
                raise PluginImportError(f"{message}. Fix or uninstall it, or block it with "
                                        f"-p no:{ep.name} / {DISABLE_ENV}={ep.name}.") from exc
            log.warning("%s; skipped (fix or uninstall it, or block it with -p no:%s / %s=%s)",
                        message, ep.name, DISABLE_ENV, ep.name)
            broken[ep.name] = message
            manager.set_blocked(ep.name)
            continue
        _register(manager, plugin, ep.name, dist, version)
        origins[ep.name] = (dist, version)
    for name, module_name in BUILTIN_PLUGINS.items():
        if manager.is_blocked(name) or manager.has_plugin(name):
            continue
        try:
            plugin = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginImportError(
                f"built-in plugin {name!r} ({module_name}) failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        _register(manager, plugin, name, "c3llm", _own_version())
        origins[name] = ("c3llm", _own_version())
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        name = manager.get_name(exc.plugin) or "?"
        dist, version = origins.get(name, (None, None))
        raise PluginImportError(_hook_problem(name, dist, version, str(exc))) from exc
    return manager, origins


def _register(manager: pluggy.PluginManager, plugin: Any, name: str, dist: str | None, version: str | None) -> None:
    if manager.is_registered(plugin):  # same module under two entry-point names
        return
    try:
        manager.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginImportError(_hook_problem(name, dist, version, str(exc))) from exc


def _hook_problem(name: str, dist: str | None, version: str | None, detail: str) -> str:
    """One line: which plugin (and distribution) has a bad hook, the closest real hook, how to block it."""
    detail = " ".join(detail.split())
    match = re.search(r"unknown hook '([^']+)'", detail)
    hint = did_you_mean(match.group(1), hookspecs.ROLE_HOOKS.values()) if match else ""
    what = f"unknown hook {match.group(1)!r}.{hint}" if match else f"an invalid hook: {detail}."
    source = f" from distribution {dist} {version}" if dist else ""
    return (f"plugin {name!r}{source} has {what} Fix or uninstall it, or block it with "
            f"-p no:{name} / {DISABLE_ENV}={name}.")


def _own_version() -> str | None:
    try:
        return metadata.version("c3llm")
    except metadata.PackageNotFoundError:
        return None


_cache: dict[frozenset, Registry] = {}


def get_registry(disabled: Iterable[str] = (), *, refresh: bool = False) -> Registry:
    """The registry for this process (built on first use, cached per blocked-set)."""
    key = frozenset(set(disabled) | disabled_from_env())
    if refresh or key not in _cache:
        broken: dict[str, str] = {}
        manager, origins = get_plugin_manager(key, broken)
        _cache[key] = Registry(manager, origins, broken)
    return _cache[key]
