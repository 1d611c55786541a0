"""Shared fixtures of the hardening tests: the tiny pipeline, a saved checkpoint of it, media."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from c3llm import sdk

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.toml"


@pytest.fixture(scope="session")
def tiny_pipe() -> sdk.Pipeline:
    torch.manual_seed(0)
    return sdk.Pipeline.from_config(TINY)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Small good and bad media files, written once."""
    root = tmp_path_factory.mktemp("media")
    frames = torch.randint(0, 255, (10, 32, 32, 3), dtype=torch.uint8)
    out = {
        "wav": sdk.Audio(0.1 * torch.randn(1, 8000), 16000).save(root / "x.wav"),
        "mp4": sdk.Video.from_frames(frames, fps=10.0).save(root / "x.mp4"),
        "still": sdk.Video.from_frames(frames[:1], fps=10.0).save(root / "still.mp4"),
        "empty": root / "empty.wav",
        "text": root / "notes.wav",
        "file": root / "a_file",
    }
    out["empty"].write_bytes(b"")
    out["text"].write_text("this is not audio\n")
    out["file"].write_text("a file, not a folder\n")
    return out


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny pipeline saved once (tests copy it before breaking it)."""
    folder = tmp_path_factory.mktemp("ckpt") / "pipeline"
    torch.manual_seed(0)
    sdk.Pipeline.from_config(TINY).save_pretrained(folder)
    return folder
