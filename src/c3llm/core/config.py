"""Strict config loading: frozen attrs classes from TOML/JSON mappings.

Every component has a ``@attrs.frozen(kw_only=True)`` config class. :func:`from_mapping`
builds one from plain data and refuses anything doubtful with a :class:`ConfigError` that
names the key (dotted, e.g. ``backbone.lora_r``) and the bad value: unknown keys get a
close-match suggestion, values are checked against the field's type annotation, and the
class's own validators (ranges, choices) are reported the same way.

Field metadata understood here (set it with :func:`field`):

- ``path=True`` — a filesystem path; relative values resolve against the config file's folder.
- ``bind="role.attribute"`` — a value the pipeline fills in from an already-built component
  when the config leaves it ``None`` (e.g. a refiner's ``cond_dim`` from
  ``backbone.hidden_size``); an explicit value that disagrees is an
  :class:`~c3llm.core.errors.IncompatibleComponentsError` naming both sides.
"""

from __future__ import annotations

import json
import logging
import math
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import attrs
import tomllib

from c3llm.core.errors import ConfigError, did_you_mean

C = TypeVar("C")


def field(
    default: Any = attrs.NOTHING,
    *,
    help: str = "",
    path: bool = False,
    bind: str | None = None,
    validator: Any = None,
    factory: Any = None,
    aliases: tuple[str, ...] = (),
) -> Any:
    """An attrs field with the metadata this module understands (see module doc).

    :param aliases: former names of the key, still read (with a deprecation warning naming
        the new key) for one release.
    """
    metadata = {"help": help, "path": path, "bind": bind, "aliases": tuple(aliases)}
    if factory is not None:
        return attrs.field(factory=factory, validator=validator, metadata=metadata)
    return attrs.field(default=default, validator=validator, metadata=metadata)


# ---------------------------------------------------------------------------------------
# Reading files


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file into a mapping, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is {len(raw)} bytes; a config file is at most {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x}); is it a config file?") from exc
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot parse {path}: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(f"cannot parse {path}: nested too deeply") from exc
    _check_depth(data, str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table, got {type(data).__name__}")
    return data


#: Largest config file read (a config is a few kB; this refuses a binary picked by mistake).
MAX_CONFIG_BYTES = 10 * 2**20
#: Deepest nesting of tables and lists accepted (the schema needs 4).
MAX_CONFIG_DEPTH = 32


def _check_depth(data: Any, where: str) -> None:
    """Refuse tables/lists nested deeper than :data:`MAX_CONFIG_DEPTH` (iteratively, so a
    5 000-deep document is a ConfigError, not a RecursionError later)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{where}: nested more than {MAX_CONFIG_DEPTH} levels deep")
        if isinstance(value, Mapping):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"backbone.lora_r=32"`` -> ``(["backbone", "lora_r"], 32)``; values are TOML
    literals (``32``, ``0.1``, ``true``, ``[1, 2]``, ``"x"``), bare words are strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"override {text!r}: {key!r} is not a dotted key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    except RecursionError as exc:
        raise ConfigError(f"override {key!r}: the value is nested too deeply") from exc
    _check_depth(value, f"override {key!r}")
    return parts, value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``section.key=value`` override applied."""
    result = json.loads(json.dumps(data, default=str)) if data else {}
    for text in overrides:
        parts, value = parse_override(text)
        node = result
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return result


# ---------------------------------------------------------------------------------------
# Building attrs configs


def from_mapping(cls: type[C], data: Any, *, where: str = "", base_dir: Path | None = None) -> C:
    """Build the attrs config ``cls`` from plain data, strictly (see module doc)."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a table, got {_show(data)}")
    attrs.resolve_types(cls)
    fields = {f.name: f for f in attrs.fields(cls)}
    data = _renamed(data, fields, where)
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        raise ConfigError(
            f"unknown key {_dotted(where, key)!r}.{did_you_mean(key, fields)}"
            f" Valid keys: {', '.join(sorted(fields))}."
        )
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        key = _dotted(where, name)
        value = _coerce(value, f.type, key, base_dir)
        if f.metadata.get("path") and value is not None and base_dir is not None:
            p = Path(value).expanduser()
            value = str(p if p.is_absolute() else (base_dir / p))
        kwargs[name] = value
    missing = [n for n, f in fields.items() if f.default is attrs.NOTHING and n not in kwargs]
    if missing:
        raise ConfigError(f"missing required key {_dotted(where, missing[0])!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def _renamed(data: Mapping[str, Any], fields: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``data`` with deprecated key names replaced by the current ones (warned once each)."""
    out = dict(data)
    for name, f in fields.items():
        for old in f.metadata.get("aliases", ()):
            if old not in out:
                continue
            if name in out:
                raise ConfigError(f"{_dotted(where, old)!r} is the old name of {_dotted(where, name)!r}; give only one")
            message = (f"config key {_dotted(where, old)!r} is deprecated and will be removed in the next "
                       f"release; use {_dotted(where, name)!r}")
            warnings.warn(message, DeprecationWarning, stacklevel=3)
            logging.getLogger("c3llm").warning(message)
            out[name] = out.pop(old)
    return out


def to_mapping(config: Any) -> dict[str, Any]:
    """An attrs config as plain JSON/TOML-able data (tuples become lists)."""
    return _plain(attrs.asdict(config, recurse=True))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def strip_none(data: Any) -> Any:
    """Drop ``None`` values recursively (TOML has no null)."""
    if isinstance(data, dict):
        return {k: strip_none(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [strip_none(v) for v in data]
    return data


def _dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _coerce(value: Any, tp: Any, key: str, base_dir: Path | None) -> Any:
    """Check ``value`` against annotation ``tp``; return it converted (list->tuple, int->float)."""
    if tp is None or tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, base_dir)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:  # an optional value: the one type's own message says more
            raise errors[0]
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {_show(value)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"{key}: {value!r} is not one of {', '.join(map(repr, args))}."
                + (did_you_mean(value, [str(a) for a in args]) if isinstance(value, str) else "")
            )
        return value
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {_show(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]", base_dir) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{key}[{i}]", base_dir) for i, v in enumerate(value)]
        return out if origin is list else tuple(out)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {_show(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{key}.{k}", base_dir) for k, v in value.items()}
    if isinstance(tp, type) and attrs.has(tp):
        return from_mapping(tp, value, where=key, base_dir=base_dir)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {_show(value)}")
        if not -(2**63) <= value < 2**63:
            raise ConfigError(f"{key}: {value} does not fit in 64 bits")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {_show(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {_show(value)}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_show(value)}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{key}: expected a path, got {_show(value)}")
        return Path(value)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {_show(value)}")
    return value


def _type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    names = [getattr(a, "__name__", str(a)) for a in args]
    return " or ".join(names)


# ---------------------------------------------------------------------------------------
# Validators with messages that name the key


def in_range(low: float | None = None, high: float | None = None, *, low_open: bool = False):
    """attrs validator: ``low <= value <= high`` (``low < value`` when ``low_open``)."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")
        bad = (low is not None and (value <= low if low_open else value < low)) or (
            high is not None and value > high
        )
        if bad:
            lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
            hi = "" if high is None else f"<= {high}"
            cond = " and ".join(x for x in (lo, hi) if x)
            raise ValueError(f"{attribute.name} must be {cond}, got {value!r}")

    return check


def one_of(*choices: Any):
    """attrs validator: value must be one of ``choices`` (with a suggestion)."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in choices:
            hint = did_you_mean(value, [str(c) for c in choices]) if isinstance(value, str) else ""
            raise ValueError(
                f"{attribute.name} must be one of {', '.join(map(repr, choices))}, got {value!r}.{hint}"
            )

    return check


# ---------------------------------------------------------------------------------------
# Bound fields (values taken from other components of a pipeline)


def bind(config: C, lookup: Any, *, where: str) -> C:
    """Fill ``bind=`` fields of ``config`` left as ``None`` from ``lookup("role.attr")``;
    refuse explicit values that disagree with the component they describe.

    ``lookup`` returns :data:`attrs.NOTHING` when the named component is not part of the
    pipeline, in which case the field is left as it is.
    """
    from c3llm.core.errors import IncompatibleComponentsError

    changes = {}
    for f in attrs.fields(type(config)):
        source = f.metadata.get("bind")
        if not source:
            continue
        actual = lookup(source)
        if actual is attrs.NOTHING:
            continue
        value = getattr(config, f.name)
        if value is None:
            changes[f.name] = actual
        elif value != actual:
            raise IncompatibleComponentsError(
                f"{where}.{f.name} = {value!r} but {source} = {actual!r}; they must agree "
                f"(leave {where}.{f.name} unset to take it from {source.split('.')[0]})"
            )
    return attrs.evolve(config, **changes) if changes else config
