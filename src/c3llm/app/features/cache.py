"""The feature cache: per-clip tensors computed once per extractor, stored as safetensors.

Layout under a cache root::

    {root}/{extractor_key}/extractor.json          what made these entries (kind, component,
                                                   plugin version, config, weight fingerprint)
    {root}/{extractor_key}/index.json              id -> file, shapes, dtypes, bytes
    {root}/{extractor_key}/{ab}/{name}.safetensors one file per clip

The extractor key hashes everything that decides the tensors' values (see
:func:`extractor_key`), so a changed config or a retrained codec writes to a new folder
instead of reusing stale entries. Each entry is written to a temporary file and renamed
into place, so an interrupted write never leaves a half-written entry under its final name.
Entries carry a checksum in their safetensors metadata; :meth:`FeatureCache.get` verifies it
and raises :class:`~c3llm.core.errors.CheckpointError` on a truncated or altered file.

The files are the truth and the index only an accelerator: opening a cache reconciles the
index with the files on disk (entries written after the last index flush are picked up,
deleted or resized files are re-read), and a missing index is rebuilt from the files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from c3llm.core.config import to_mapping
from c3llm.core.errors import CheckpointError, InputError
from c3llm.core.paths import id_problem

log = logging.getLogger(__name__)

FORMAT = "c3llm-feature-cache"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"
EXTRACTOR_FILE = "extractor.json"
SUFFIX = ".safetensors"
#: Temp files older than this are leftovers of a killed writer and are removed on open.
STALE_TEMP_SECONDS = 60.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_KEY_PART = re.compile(r"[^a-z0-9._-]+")


# ---------------------------------------------------------------------------------------
# Extractor keys


def weights_fingerprint(module: torch.nn.Module) -> str:
    """Hash of a module's state dict (names, dtypes, shapes and bytes), 32 hex digits.

    Two modules with equal fingerprints produce the same outputs for the same config; a
    codec retrained in the run gets a new fingerprint and therefore a new cache folder.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        _hash_tensor(digest, name, tensor)
    return digest.hexdigest()


def describe_extractor(kind: str, component: Any, *, recipe: Mapping[str, Any] | None = None,
                       weights: bool = True) -> dict[str, Any]:
    """Everything that decides what ``component`` computes for cache entries of ``kind``.

    :param recipe: how the caller turns media into the component's input (e.g. the rate and
        channel count audio is converted to), part of the key as well.
    :param weights: include :func:`weights_fingerprint` (for ``nn.Module`` components).
    """
    spec = getattr(component, "registry_spec", None)
    config = getattr(component, "config", None)
    try:
        config_data = to_mapping(config) if config is not None else None
    except Exception as exc:  # attrs.asdict on something that is not an attrs instance
        raise InputError(
            f"{type(component).__name__}.config is not an attrs config ({exc}); the feature cache "
            f"keys entries by the component's config"
        ) from exc
    return {
        "kind": kind,
        "name": spec.name if spec is not None else f"{type(component).__module__}.{type(component).__qualname__}",
        "plugin": spec.plugin if spec is not None else None,
        "version": spec.version if spec is not None else None,
        "config": config_data,
        "recipe": dict(recipe or {}),
        "weights": weights_fingerprint(component) if weights and isinstance(component, torch.nn.Module) else None,
    }


def key_of(description: Mapping[str, Any]) -> str:
    """``{kind}-{name}-{16 hex digits}``: readable, and stable across runs and machines."""
    canonical = json.dumps(description, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    name = str(description.get("name", "component")).rsplit(".", 1)[-1].lower()
    return f"{_KEY_PART.sub('_', str(description['kind']).lower())}-{_KEY_PART.sub('_', name)[:40]}-{digest}"


def extractor_key(kind: str, component: Any, *, recipe: Mapping[str, Any] | None = None,
                  weights: bool = True) -> str:
    """Short stable key of (kind, registered name, config, plugin version, weights, recipe)."""
    return key_of(describe_extractor(kind, component, recipe=recipe, weights=weights))


# ---------------------------------------------------------------------------------------
# The cache


class FeatureCache:
    """Per-clip tensors of one extractor, in ``{root}/{key}``.

    ``put`` writes atomically; ``get`` verifies the entry and raises ``CheckpointError`` on a
    corrupt one; ``flush`` writes the index (atomically). Use as a context manager to flush
    on exit, also when an exception interrupts the work.
    """

    def __init__(self, root: str | Path, key: str, *, description: Mapping[str, Any] | None = None):
        if not key or "/" in key or key.startswith("."):
            raise InputError(f"cache key {key!r} must be a plain folder name (see extractor_key)")
        self.root = Path(root)
        self.key = key
        self.directory = self.root / key
        self.directory.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, dict[str, Any]] = {}
        self._dirty = False
        if description is not None:
            self._write_description(description)
        self._open_index()

    @classmethod
    def for_component(cls, root: str | Path, kind: str, component: Any, *,
                      recipe: Mapping[str, Any] | None = None) -> FeatureCache:
        """The cache of ``component``'s ``kind`` entries under ``root`` (folder from its key)."""
        description = describe_extractor(kind, component, recipe=recipe)
        return cls(root, key_of(description), description=description)

    # -- queries --------------------------------------------------------------------------

    def has(self, id: str) -> bool:
        """Whether an entry for ``id`` is on disk (not yet verified: :meth:`get` does that)."""
        return id in self._index

    def ids(self) -> list[str]:
        return sorted(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, id: object) -> bool:
        return id in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def shapes(self, id: str) -> dict[str, tuple[int, ...]]:
        """Tensor name -> shape of an entry, from the index (no file read)."""
        entry = self._entry(id)
        return {name: tuple(shape) for name, shape in entry["shapes"].items()}

    def path(self, id: str) -> Path:
        """Where ``id``'s entry lives (whether or not it exists yet)."""
        return self.directory / _relative_file(id)

    # -- reading and writing --------------------------------------------------------------

    def get(self, id: str, *, verify: bool = True) -> dict[str, torch.Tensor]:
        """Load an entry (memory-mapped read); ``CheckpointError`` if it is corrupt."""
        self._entry(id)
        return read_entry(self.path(id), id, verify=verify)

    def put(self, id: str, tensors: Mapping[str, torch.Tensor]) -> None:
        """Write an entry atomically (temp file + ``os.replace``), replacing any old one."""
        problem = id_problem(id)
        if problem:
            raise InputError(f"cache id {id!r} {problem}; ids are non-empty text without control characters")
        if not tensors:
            raise InputError(f"entry {id!r} has no tensors to cache")
        from safetensors.torch import save_file

        data = {}
        for name, tensor in tensors.items():
            if not isinstance(tensor, torch.Tensor):
                raise InputError(f"entry {id!r}: {name!r} is a {type(tensor).__name__}, not a tensor")
            data[name] = tensor.detach().to("cpu").contiguous().clone()
        metadata = {"format": FORMAT, "id": id, "checksum": _checksum(data)}
        target = self.path(id)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            save_file(data, tmp, metadata=metadata)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._index[id] = _index_entry(target, self.directory, data)
        self._dirty = True

    def discard(self, id: str) -> None:
        """Remove an entry (e.g. a corrupt one before recomputing it)."""
        self.path(id).unlink(missing_ok=True)
        if self._index.pop(id, None) is not None:
            self._dirty = True

    def flush(self) -> None:
        """Write the index if it changed (temp file + ``os.replace``)."""
        if not self._dirty:
            return
        record = {"format": FORMAT, "format_version": FORMAT_VERSION, "key": self.key, "entries": self._index}
        _atomic_write_text(self.directory / INDEX_FILE, json.dumps(record, separators=(",", ":"), sort_keys=True))
        self._dirty = False

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.directory)!r}, {len(self)} entries)"

    # -- internals ------------------------------------------------------------------------

    def _entry(self, id: str) -> dict[str, Any]:
        entry = self._index.get(id)
        if entry is None:
            raise CheckpointError(f"no cache entry for {id!r} in {self.directory}; run prepare to compute it")
        return entry

    def _write_description(self, description: Mapping[str, Any]) -> None:
        path = self.directory / EXTRACTOR_FILE
        text = json.dumps(description, indent=2, sort_keys=True, default=str) + "\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            _atomic_write_text(path, text)

    def _open_index(self) -> None:
        """Load the index, then reconcile it with the files on disk."""
        path = self.directory / INDEX_FILE
        stored: dict[str, dict[str, Any]] = {}
        if path.is_file():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                if record.get("format") != FORMAT or record.get("format_version", 0) > FORMAT_VERSION:
                    raise ValueError(f"not a {FORMAT} v{FORMAT_VERSION} index")
                stored = dict(record["entries"])
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("feature cache index %s is unreadable (%s); rebuilding it from the files", path, exc)
                stored = {}
        files = list(_entry_files(self.directory))
        if files and not stored:
            log.info("feature cache index %s is missing or empty; rebuilding it from %d file(s)", path, len(files))
        by_file = {entry.get("file"): (id, entry) for id, entry in stored.items() if isinstance(entry, dict)}
        index: dict[str, dict[str, Any]] = {}
        reread = 0
        for file, size in files:
            known = by_file.get(file)
            if known is not None and known[1].get("bytes") == size:
                index[known[0]] = known[1]
                continue
            reread += 1
            try:
                id, entry = _entry_from_header(self.directory / file, self.directory)
            except CheckpointError as exc:
                log.warning("feature cache: ignoring unreadable entry (%s); prepare recomputes it", exc)
                continue
            index[id] = entry
        self._index = index
        self._dirty = index != stored
        if reread:
            log.info("feature cache %s: read %d entry header(s) missing from or changed since the index",
                     self.directory, reread)
        self.flush()


# ---------------------------------------------------------------------------------------
# Entry files


def read_entry(path: Path, id: str | None = None, *, verify: bool = True) -> dict[str, torch.Tensor]:
    """Read one entry file; check its id and checksum. ``CheckpointError`` if corrupt."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"feature cache entry {path} is unreadable ({exc}); it is truncated or corrupt. "
            f"Run prepare again to recompute it."
        ) from exc
    if id is not None and metadata.get("id") != id:
        raise CheckpointError(f"feature cache entry {path} holds id {metadata.get('id')!r}, expected {id!r}")
    if verify and metadata.get("checksum") != _checksum(tensors):
        raise CheckpointError(
            f"feature cache entry {path} fails its checksum (the file was altered or damaged). "
            f"Run prepare again to recompute it."
        )
    return tensors


def _entry_from_header(path: Path, directory: Path) -> tuple[str, dict[str, Any]]:
    """(id, index entry) from an entry file's header, without reading its tensors."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            shapes = {name: list(handle.get_slice(name).get_shape()) for name in handle.keys()}
            dtypes = {name: handle.get_slice(name).get_dtype() for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    id = metadata.get("id")
    if metadata.get("format") != FORMAT or not id:
        raise CheckpointError(f"{path} is not a {FORMAT} entry (no id in its metadata)")
    return id, {
        "file": path.relative_to(directory).as_posix(),
        "shapes": shapes,
        "dtypes": {name: _torch_dtype_name(d) for name, d in dtypes.items()},
        "bytes": path.stat().st_size,
    }


def _index_entry(path: Path, directory: Path, data: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    return {
        "file": path.relative_to(directory).as_posix(),
        "shapes": {name: list(t.shape) for name, t in data.items()},
        "dtypes": {name: str(t.dtype).removeprefix("torch.") for name, t in data.items()},
        "bytes": path.stat().st_size,
    }


def _entry_files(directory: Path) -> Iterator[tuple[str, int]]:
    """(relative path, size) of every entry file; stray temp files are removed."""
    for shard in os.scandir(directory):
        if shard.name.startswith(".") and shard.name.endswith(".tmp"):
            _remove_if_stale(shard)  # an index write that was killed
            continue
        if not shard.is_dir() or shard.name.startswith("."):
            continue
        for item in os.scandir(shard.path):
            if item.name.endswith(".tmp") and item.name.startswith("."):
                _remove_if_stale(item)  # left by a killed writer
            elif item.name.endswith(SUFFIX) and item.is_file():
                yield f"{shard.name}/{item.name}", item.stat().st_size


def _remove_if_stale(item: os.DirEntry) -> None:
    """Delete a temp file no writer has touched for a while (a live one may still rename it)."""
    try:
        if time.time() - item.stat().st_mtime > STALE_TEMP_SECONDS:
            Path(item.path).unlink(missing_ok=True)
    except FileNotFoundError:
        pass


def _relative_file(id: str) -> str:
    """``{ab}/{readable id prefix}-{hash}.safetensors``: unique per id, also on
    case-insensitive file systems, and never a path outside the cache folder."""
    digest = hashlib.blake2b(id.encode("utf-8"), digest_size=6).hexdigest()
    readable = _UNSAFE.sub("_", id)[:64].strip("_") or "clip"
    return f"{digest[:2]}/{readable}-{digest}{SUFFIX}"


def _checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(tensors.items()):
        _hash_tensor(digest, name, tensor)
    return digest.hexdigest()


def _hash_tensor(digest: Any, name: str, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().to("cpu").contiguous()
    digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    if tensor.numel():
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)


def _torch_dtype_name(safetensors_dtype: str) -> str:
    names = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
             "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
    return names.get(str(safetensors_dtype).upper(), str(safetensors_dtype).lower())


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
