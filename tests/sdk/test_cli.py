"""The c3llm-run launcher: listing, dry runs, overrides, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
from click.testing import CliRunner

from c3llm.app.cli import main
from c3llm.core.hookspecs import ROLE_HOOKS

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "tiny.toml")


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_plugins_lists_every_role(cli):
    result = cli("plugins")
    assert result.exit_code == 0
    for role in ROLE_HOOKS:
        assert f"{role}:" in result.output
    for name in ("encodec", "gemma", "llama", "nar", "clap", "rgb-flow", "synthetic", "cider_d"):
        assert f"  {name} " in result.output
    assert "(c3llm " in result.output


def test_dry_run_prints_resolved_config_with_overrides(cli):
    result = cli(TINY, "--dry-run", "--set", "backbone.lora_r=32", "--set", "run.seed=5")
    assert result.exit_code == 0, result.output
    resolved = tomllib.loads(result.output)
    assert resolved["backbone"]["lora_r"] == 32 and resolved["run"]["seed"] == 5
    assert resolved["backbone"]["mode"] == "full"  # from the file
    assert "lora_alpha" in resolved["backbone"]  # defaults filled in
    assert "temperature" in resolved["generate"]["sampling"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "backbone.lora_rr=3"], "unknown key 'backbone.lora_rr'. Did you mean 'lora_r'"),
        (["--set", "backbone.lora_r=abc"], "backbone.lora_r: expected an integer, got 'abc'"),
        (["--set", "backbone.name=gema"], "unknown backbone 'gema'. Did you mean 'gemma'"),
        (["--set", "trian.steps=3"], "unknown section [trian]"),
        (["--set", "run.stages=['trian']"], "unknown stage 'trian'. Did you mean 'train'"),
    ],
)
def test_config_errors_are_one_line(cli, args, message):
    result = cli(TINY, "--dry-run", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.count("\n") == 1


def test_debug_shows_the_traceback():
    from c3llm.core.errors import ConfigError

    runner = CliRunner()
    with pytest.raises(ConfigError):
        runner.invoke(main, ["--debug", TINY, "--dry-run", "--set", "backbone.lora_rr=3"], catch_exceptions=False)


def test_missing_config_file(cli, tmp_path):
    result = cli("run", str(tmp_path / "nope.toml"))
    assert result.exit_code != 0


def test_generate_requires_a_source(cli):
    result = cli("generate", "--config", TINY)
    assert result.exit_code == 2 and "nothing to do" in result.output


def test_generate_writes_a_wav(cli, tmp_path):
    out = tmp_path / "x.wav"
    result = cli("generate", "--config", TINY, "--text", "a high beep", "--duration", "0.5", "--seed", "1",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    import soundfile

    info = soundfile.info(str(out))
    assert info.samplerate == 16000 and abs(info.duration - 0.5) < 1e-3


def test_block_flag_validation(cli):
    result = CliRunner().invoke(main, ["-p", "clap", "plugins"])
    assert result.exit_code == 2 and "expected no:NAME" in result.output
    blocked = cli("-p", "no:clap", "plugins")
    assert "  clap " not in blocked.output and "  rgb-flow " in blocked.output
