"""configs/paper.toml and configs/llama3.toml end to end, run by the commands of
docs/paper_scale.md, on checkpoints in the real public formats (tests/paper_smoke.py).

The only changes to the shipped configs are the walkthrough's own ``--set`` path overrides
(``/models/...`` and ``/data/...`` pointed at the smoke files) plus :data:`SMALL`, which makes
the run short: step counts and batch sizes (20 000 steps of batch 8 x 4 would not finish on
a CPU). No architecture key is changed: the codec, CLAP and ResNet-50 checkpoints are at their
real architectures, and the backbone loaders read the (reduced) dims from the checkpoints'
config.json, as they do for the real Gemma-2B and LLaMA-3.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from paper_smoke import CLAP, ENCODEC, GEMMA, LLAMA, RESNET, write_smoke_files

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "paper_scale.md"

#: What makes the run short; everything else is the shipped config.
SMALL = (
    "train.lm.steps=2", "train.lm.batch_size=3", "train.lm.grad_accum=1", "train.lm.warmup_steps=0",
    "train.nar.steps=1", "train.nar.batch_size=2", "train.nar.warmup_steps=0",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("paper_smoke")
    write_smoke_files(root)
    return root


def doc_commands() -> tuple[list[list[str]], list[str], list[str]]:
    """The walkthrough's stage commands, its all-stages command with path overrides, and its
    generate command, each as argv after ``c3llm-run``."""
    doc = DOC.read_text()
    section = doc[doc.index("## 3. Commands"):doc.index("## 4.")]
    blocks = re.findall(r"```bash\n(.+?)```", section, flags=re.S)
    stages = [shlex.split(line, comments=True)[1:] for line in blocks[0].splitlines() if line.strip()]
    combined = shlex.split(blocks[1].replace("\\\n", " "))[1:]
    generate = shlex.split(re.search(r"`(c3llm-run generate [^`]+)`", section).group(1))[1:]
    return stages, combined, generate


def localised(argv: list[str], smoke: Path, config: str) -> list[str]:
    """``argv`` on the smoke files: /models/ and /data/ under ``smoke``, the config by path."""
    out = []
    for arg in argv:
        arg = arg.replace("=/models/", f"={smoke}/models/").replace("=/data/", f"={smoke}/data/")
        out.append(str(ROOT / "configs" / config) if arg == "configs/paper.toml" else arg)
    return out


def run_cli(argv: list[str]) -> str:
    from c3llm.app.cli import main

    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    assert result.exit_code == 0, f"c3llm-run {' '.join(argv)}\n{result.output}"
    return result.output


def path_overrides(combined: list[str]) -> list[str]:
    """The ``--set KEY=PATH`` pairs of the walkthrough's combined command, flattened."""
    return [a for i, a in enumerate(combined) if a == "--set" or (i and combined[i - 1] == "--set")]


def check_run(run: Path) -> dict:
    from safetensors import safe_open

    pipeline = json.loads((run / "pipeline" / "pipeline.json").read_text())
    last = json.loads((run / "train" / "lm" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss_t2a", "loss_v2a", "loss_a2t"} <= set(last), last  # the mix served all three tasks
    for section, key in (("decoder", "pretrained"), ("backbone", "pretrained"), ("audio_encoder", "pretrained"),
                         ("video_encoder", "weights")):
        assert pipeline["components"][section]["locations"][key].startswith("../"), section
        with safe_open(str(run / "pipeline" / section / "weights.safetensors"), "pt") as handle:
            names = list(handle.keys())
        # frozen models are recorded by path, not copied; the backbone holds its LoRA + new rows
        assert bool(names) == (section == "backbone"), (section, names[:3])
    generated = run / "generated" / "test"
    assert sorted(p.name for p in (generated / "t2a").glob("*.wav")), "no T2A outputs"
    results = json.loads((run / "eval" / "results.json").read_text())
    assert (run / "eval" / "report.md").read_text().strip()
    assert set(results["splits"]) == {"test"}
    return pipeline


def test_the_walkthrough_runs_paper_toml_on_files_in_the_real_formats(smoke, tmp_path, monkeypatch):
    """docs/paper_scale.md's commands, one by one, on configs/paper.toml (Gemma)."""
    monkeypatch.chdir(tmp_path)  # the doc's run folder is runs/paper, relative to where it runs
    stages, combined, generate = doc_commands()
    overrides = path_overrides(combined)
    assert [a.split("=")[0] for a in overrides[1::2]] == [
        "backbone.pretrained", "decoder.pretrained", "audio_encoder.pretrained", "video_encoder.weights",
        "data.train.audiocaps.root", "data.train.clotho.root", "data.train.vggsound.root", "data.eval.test.root"]
    small = [a for pair in SMALL for a in ("--set", pair)]
    for argv in stages:
        output = run_cli(localised(argv, smoke, "paper.toml") + localised(overrides, smoke, "paper.toml") + small)
        if "--dry-run" in argv:
            assert f"{smoke}/models/{GEMMA}" in output and f"{smoke}/models/{ENCODEC}" in output
    run = tmp_path / "runs" / "paper"
    check_run(run)
    out = run_cli(localised(generate, smoke, "paper.toml"))
    wav = re.search(r"wrote (\S+\.wav)", out).group(1)
    assert (tmp_path / wav).is_file()
    # not in the walkthrough: video-to-audio through the real ResNet-50 layout (the AudioCaps
    # test split has no videos, so predict made no V2A outputs)
    video = sorted((smoke / "data" / "vggsound" / "video").glob("*.mp4"))[0]
    out = run_cli(["generate", "--checkpoint", "runs/paper", "--video", str(video), "--out", "v2a.wav"])
    assert "wrote v2a.wav" in out and (tmp_path / "v2a.wav").is_file()

    # section 6's command, new model places on the command line (links to the same, shared
    # files here; tests/test_run_folder_paths.py moves models and run folders for real)
    section = DOC.read_text().split("## 6.")[1]
    moved = shlex.split(re.search(r"```bash\n(.+?)```", section, flags=re.S).group(1).replace("\\\n", " "))[1:]
    new = tmp_path / "new"
    new.mkdir()
    for name in (GEMMA, ENCODEC):
        (new / name).symlink_to(smoke / "models" / name)
    out = run_cli([a.replace("=/new/", f"={new}/") for a in moved])
    assert "wrote dog.wav" in out


def test_the_walkthrough_runs_llama3_toml_in_one_command(smoke, tmp_path, monkeypatch):
    """The walkthrough's all-stages command on configs/llama3.toml (the backbone swap)."""
    monkeypatch.chdir(tmp_path)
    _, combined, _ = doc_commands()
    argv = localised(combined, smoke, "paper.toml")
    argv[argv.index(str(ROOT / "configs" / "paper.toml"))] = str(ROOT / "configs" / "llama3.toml")
    argv = [a.replace(f"/models/{GEMMA}", f"/models/{LLAMA}") for a in argv]
    run_cli(argv + [a for pair in SMALL for a in ("--set", pair)])
    check_run(tmp_path / "runs" / "llama-3")
    resolved = json.loads((tmp_path / "runs" / "llama-3" / "resolved_config.json").read_text())
    assert resolved["backbone"]["name"] == "llama"
    assert {resolved["audio_encoder"]["pretrained"], resolved["video_encoder"]["weights"]} == {
        f"{smoke}/models/{CLAP}", f"{smoke}/models/{RESNET}"}
