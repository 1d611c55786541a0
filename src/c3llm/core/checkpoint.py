"""Checkpoint files: safetensors for tensors, JSON for configs, written atomically.

A checkpoint directory is written under a temporary name and renamed into place, so an
interrupted save never leaves a half-written checkpoint where a good one was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from c3llm.core.errors import CheckpointError

#: A temp file or folder no writer has touched for this long was left by a killed process.
STALE_TEMP_SECONDS = 60.0
#: Largest safetensors header read (the JSON index of names, dtypes, shapes and offsets).
MAX_HEADER_BYTES = 100 * 2**20
#: Bytes per element of each safetensors dtype.
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_SAFETENSORS_TEMP = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")


def remove_stale_temp(directory: Path, prefix: str | None = None) -> None:
    """Delete temp files and folders a killed writer left in ``directory``: safetensors'
    own ``.tmpXXXXXX`` files, and (with ``prefix``) our ``.{prefix}.*`` ones, once no
    writer has touched them for :data:`STALE_TEMP_SECONDS` (a live writer may still rename
    a fresh one)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        ours = prefix is not None and entry.name.startswith(f".{prefix}.") and entry.name != f".{prefix}.old"
        if not (ours or _SAFETENSORS_TEMP.match(entry.name)):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime <= STALE_TEMP_SECONDS:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    """Write tensors as safetensors (shared storage is copied; safetensors refuses aliasing)."""
    from safetensors.torch import save_file

    remove_stale_temp(Path(path).parent)
    data = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    # an empty metadata dict makes safetensors write an unreadable header: pass None instead
    save_file(data, str(path), metadata=dict(metadata) if metadata else None)


def read_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (dtype, shape) of a safetensors file, from its header alone, after checking
    that the header is well formed and every tensor lies inside the file (no tensor is read)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise CheckpointError(f"cannot read {path}: {size} bytes is too short for a safetensors file")
            length = int.from_bytes(prefix, "little")
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise CheckpointError(f"cannot read {path}: its header claims {length} bytes "
                                      f"(file: {size} bytes); corrupt or not a safetensors file?")
            header = json.loads(handle.read(length).decode("utf-8"))
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"cannot read {path}: the header is not JSON (corrupt or not a safetensors file?)") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"cannot read {path}: the header is not a table")
    payload = size - 8 - length
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            ok = (dtype in DTYPE_BYTES and isinstance(shape, list)
                  and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
                  and all(isinstance(o, int) and not isinstance(o, bool) for o in (begin, end)))
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise CheckpointError(f"cannot read {path}: malformed header entry for {name!r}")
        numel = 1
        for d in shape:
            numel *= d
        if not (0 <= begin <= end <= payload and end - begin == numel * DTYPE_BYTES[dtype]):
            raise CheckpointError(f"cannot read {path}: tensor {name!r} {dtype}{shape} does not fit the "
                                  f"{payload} bytes of data (truncated or corrupt file?)")
        out[name] = (dtype, tuple(shape))
    return out


def load_tensors(path: Path, expected: Mapping[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file, with a clear error for missing or corrupt files.

    The header is checked first (:func:`read_header`); with ``expected`` (name -> shape, or
    name -> tensor) the names and shapes must match it before any tensor is read, so a file
    declaring huge or foreign tensors is refused without mapping them.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    header = read_header(path)
    if expected is not None:
        want = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v) for k, v in expected.items()}
        got = {k: shape for k, (_, shape) in header.items()}
        if got != want:
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            wrong = [f"{k}: file {got[k]} vs expected {want[k]}" for k in sorted(set(got) & set(want))
                     if got[k] != want[k]]
            parts = ([f"missing {missing[:3]}"] if missing else []) + ([f"unexpected {extra[:3]}"] if extra else []) \
                + ([f"shape mismatch {'; '.join(wrong[:3])}"] if wrong else [])
            raise CheckpointError(f"checkpoint does not match the model: {path} does not hold the expected "
                                  f"tensors: {'; '.join(parts)}. Was it saved with a different config?")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc} (corrupt or not a safetensors file?)") from exc


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path} not found: is {path.parent} a c3llm checkpoint directory?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise CheckpointError(f"{path} is nested too deeply to be a c3llm file") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(target.parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
