"""Names that become file or folder names: sample ids, run names, split labels.

Data decides these names (a manifest's id column, a config's ``[run] name``), so no path is
ever built from one as it stands:

- a name the user chooses (``[run] name``, a split label) must be one plain file name:
  :func:`check_file_name` refuses a name that could leave its folder (``..``, a separator)
  or that the file system cannot hold (control characters, invalid Unicode, over 200 bytes)
  with an :class:`~c3llm.core.errors.InputError` naming it;
- a sample id, which a dataset may legitimately spell ``class/video`` (VAS), becomes a file
  name through :func:`file_stem`: itself when it is already a plain name, else a readable,
  sanitised prefix and a hash (unique per id, never a path).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from c3llm.core.errors import InputError

#: Longest name in UTF-8 bytes: leaves room for suffixes (``.wav``, ``.tmp``) under the
#: 255-byte limit of common file systems.
MAX_NAME_BYTES = 200


def id_problem(name: Any) -> str | None:
    """Why ``name`` cannot be an identifier (a sample id), or ``None``: it must be a
    non-empty string of valid Unicode without control characters."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name.strip():
        return "is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate?)"
    return None


def name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be used as one file name, or ``None`` when it can."""
    problem = id_problem(name)
    if problem:
        return problem
    if name in (".", ".."):
        return "is a relative folder reference"
    if "/" in name or "\\" in name:
        return "contains a path separator ('/' or '\\\\')"
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes long; at most {MAX_NAME_BYTES} are accepted"
    return None


def check_file_name(name: Any, what: str) -> str:
    """``name`` if it is safe as one file name, else an :class:`InputError` naming ``what``."""
    problem = name_problem(name)
    if problem:
        shown = repr(name)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise InputError(f"{what} {shown} {problem}; it becomes a file name, so use a plain name "
                         "without '/', '\\\\', '..' or control characters")
    return name


def file_name_validator(what: str):
    """attrs validator wrapping :func:`check_file_name` (``None`` passes)."""

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None:
            check_file_name(value, f"{what or attribute.name}")

    return check


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def file_stem(sample_id: str) -> str:
    """The file name (without suffix) outputs for ``sample_id`` are written under: the id
    itself when it is a plain file name, else ``{sanitised prefix}-{hash}`` (``dog/v_1`` ->
    ``dog_v_1-3f2a…``; ``../../x`` -> ``x-…``), so no id can point a write outside its folder."""
    if name_problem(sample_id) is None and not sample_id.startswith("."):
        return sample_id
    raw = sample_id.encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(raw, digest_size=6).hexdigest()
    readable = _UNSAFE.sub("_", sample_id)[:64].strip("._ ") or "clip"
    return f"{readable}-{digest}"
