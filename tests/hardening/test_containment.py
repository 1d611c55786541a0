"""Nothing escapes the run folder, a broken plugin stays contained, killed writers leave no
litter: outputs named from hostile ids, audio-only evaluation sets, third-party plugins that
fail to import or misspell a hook, stale temp files."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
import torch

from c3llm import sdk
from c3llm.app.evaluation.generate import generate_for_split
from c3llm.app.evaluation.runner import missing_outputs
from c3llm.core.checkpoint import atomic_directory, save_tensors
from c3llm.core.errors import PluginImportError
from c3llm.core.paths import file_stem
from c3llm.core.registry import get_registry
from c3llm.core.roles.dataset import Sample

HOSTILE_IDS = ["../../escaped", "dog/video_1", "/abs/clip", "..", "plain_id"]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_predict_writes_only_inside_its_folder_and_skips_v2a_without_video(tiny_pipe, media, tmp_path):
    run = tmp_path / "run"
    out = run / "generated" / "test"
    samples = [Sample(id=i, split="test", audio_path=media["wav"], captions=("a beep",)) for i in HOSTILE_IDS]
    samples.append(Sample(id="with_video", split="test", audio_path=media["wav"], video_path=media["mp4"],
                          captions=("a knock",)))
    before = _files(tmp_path)
    generate_for_split(tiny_pipe, samples, out, seed=0, batch_size=3, progress=False)
    written = _files(tmp_path) - before
    assert written and all(out in p.parents for p in written), sorted(map(str, written))
    assert not (tmp_path / "escaped.wav").exists() and not Path("/abs/clip.wav").exists()
    for s in samples:
        assert (out / "t2a" / f"{file_stem(s.id)}.wav").is_file()
        assert (out / "v2a" / f"{file_stem(s.id)}.wav").is_file() == (s.video_path is not None)
    ids = [s.id for s in samples]
    folders = ["t2a", "t2a_no_nar", "codec", "v2a", "v2a_no_nar", "v2a_pooled"]
    assert missing_outputs(out, ids, folders, True, [s.id for s in samples if s.video_path]) == []
    # resumable: a second call finds everything done and writes nothing
    stamp = {p: p.stat().st_mtime_ns for p in _files(out)}
    generate_for_split(tiny_pipe, samples, out, seed=0, batch_size=3, progress=False)
    assert {p: p.stat().st_mtime_ns for p in _files(out)} == stamp


def test_file_stem_is_a_plain_name_for_any_id():
    for sample_id in HOSTILE_IDS + ["a" * 500, "a\\b", "C:\\x", ".hidden", "x y,z.wav"]:
        stem = file_stem(sample_id)
        assert "/" not in stem and "\\" not in stem and stem not in (".", "..") and not stem.startswith(".")
        assert len(stem.encode()) <= 200
    assert file_stem("plain_id") == "plain_id" and file_stem("x y,z.wav") == "x y,z.wav"
    assert file_stem("dog/video_1") != file_stem("dog_video_1")


# -- plugins ------------------------------------------------------------------------------


def _distribution(root: Path, name: str, module: str, source: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[c3llm]\n{module} = {module}\n")


@pytest.fixture
def fresh_registry():
    yield
    get_registry(refresh=True)  # forget the fake distributions


def test_a_broken_plugin_does_not_stop_generate_on_a_checkpoint_that_does_not_use_it(
        tmp_path, monkeypatch, caplog, checkpoint, fresh_registry):
    _distribution(tmp_path, "broken-dist", "broken_plugin", "import not_a_real_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = get_registry(refresh=True)
    assert "broken_plugin" in registry.broken
    warnings = [r for r in caplog.records if "broken_plugin" in r.getMessage()]
    assert len(warnings) == 1 and "-p no:broken_plugin" in warnings[0].getMessage()
    pipe = sdk.Pipeline.from_pretrained(checkpoint)
    audio = pipe.text_to_audio("a beep", duration=0.2, seed=0)
    assert audio.num_samples == round(0.2 * audio.sample_rate)
    with pytest.raises(Exception, match="broken_plugin' failed to load and may provide it"):
        registry.get("backbone", "toy-lm")


def test_a_misspelt_hook_names_the_distribution_and_how_to_block_it(tmp_path, monkeypatch, fresh_registry):
    _distribution(tmp_path, "typo-dist", "typo_plugin", """
        from c3llm.core.hookspecs import hookimpl

        @hookimpl
        def register_encoderz(register):
            pass
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginImportError) as info:
        get_registry(refresh=True)
    message = str(info.value)
    assert "\n" not in message
    for phrase in ("typo_plugin", "typo-dist 1.0", "register_encoderz", "Did you mean 'register_encoders'",
                   "-p no:typo_plugin", "C3LLM_DISABLE_PLUGINS=typo_plugin"):
        assert phrase in message, phrase
    monkeypatch.setenv("C3LLM_DISABLE_PLUGINS", "typo_plugin")
    assert get_registry(refresh=True).names("backbone")


# -- litter of killed writers ---------------------------------------------------------------


def _old(path: Path) -> Path:
    stamp = time.time() - 3600
    os.utime(path, (stamp, stamp))
    return path


def test_stale_temp_files_of_killed_writers_are_removed(tmp_path):
    (tmp_path / ".tmpAbC123").write_bytes(b"half a tensor")  # safetensors' own temp name
    _old(tmp_path / ".tmpAbC123")
    fresh = tmp_path / ".tmpXyZ789"
    fresh.write_bytes(b"a live writer's")
    stale_dir = tmp_path / ".checkpoint.k1ll3d"
    stale_dir.mkdir()
    (stale_dir / "trained.safetensors").write_bytes(b"x")
    _old(stale_dir)
    save_tensors(tmp_path / "w.safetensors", {"w": torch.zeros(2)})
    assert not (tmp_path / ".tmpAbC123").exists() and fresh.exists()
    with atomic_directory(tmp_path / "checkpoint") as tmp:
        (tmp / "state.json").write_text("{}")
    assert not stale_dir.exists() and (tmp_path / "checkpoint" / "state.json").is_file()
