"""Foundation models and data cached under a folder keyed by a hash of what made them.

``{root}/{kind}-{key}/`` holds one artefact (a corpus, a model) with ``pretrain.json`` (the
config it was made from, the key, the seconds it took) written last: a folder without it is
unfinished and is rebuilt. A later run with the same config reuses the folder (and says so).
``{root}/{kind}`` is a symlink to the newest one, the stable path configs name
(``backbone.pretrained = "{out_dir}/foundation/lm"``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from c3llm.core.checkpoint import atomic_directory, read_json, write_json

log = logging.getLogger(__name__)

MARKER = "pretrain.json"


def config_key(config: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-256 of ``config`` as canonical JSON (key order ignored)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def cached(root: Path, kind: str, config: Mapping[str, Any], build: Callable[[Path], dict[str, Any] | None]) -> Path:
    """The folder of ``kind`` made from ``config``: reused when present, else ``build(tmp_dir)``
    writes it (atomically; its return value joins the marker as ``report``)."""
    key = config_key(config)
    folder = Path(root) / f"{kind}-{key}"
    if (folder / MARKER).is_file():
        log.info("pretrain %s: reused %s (same config, key %s)", kind, folder, key)
    else:
        log.info("pretrain %s: building %s (key %s)", kind, folder, key)
        started = time.perf_counter()
        with atomic_directory(folder) as tmp:
            report = build(tmp) or {}
            write_json(tmp / MARKER, {"kind": kind, "key": key, "config": dict(config),
                                      "seconds": round(time.perf_counter() - started, 1),
                                      "load_average": list(os.getloadavg()), "report": report})
    _point(Path(root) / kind, folder)
    return folder


def marker(folder: Path) -> dict[str, Any]:
    """What :func:`cached` recorded about ``folder``."""
    return read_json(Path(folder) / MARKER)


def _point(link: Path, folder: Path) -> None:
    """Make ``link`` a symlink to ``folder`` (relative, replaced atomically)."""
    if link.exists() and not link.is_symlink():
        log.warning("pretrain: %s is not a link; leaving it (the model is in %s)", link, folder)
        return
    tmp = link.with_name(f".{link.name}.link")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(folder.name)
    os.replace(tmp, link)
