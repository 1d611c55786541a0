"""An out-of-tree plugin distribution extends c3llm with no change to the core.

The toy distribution (``tests/fixtures/toy_plugin``: its own pyproject declaring an entry
point in group ``c3llm``) is built and installed into a temporary target directory; a
fresh interpreter with that directory on its path sees the new backbone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "toy_plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("toy")
    src = work / "src"
    shutil.copytree(FIXTURE, src)
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(target), str(src)],
        check=True, capture_output=True, text=True,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "c3llm.app.cli", *args], env=env, capture_output=True, text=True)


def test_plugins_command_lists_third_party_backbone(installed):
    result = run_cli(installed, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    entries = {(e["role"], e["name"]): e for e in json.loads(result.stdout)}
    toy = entries[("backbone", "toy-lm")]
    assert (toy["plugin"], toy["distribution"], toy["version"]) == ("toy", "c3llm-toy", "0.3.1")
    human = run_cli(installed, "plugins").stdout
    assert "toy-lm" in human and "c3llm-toy 0.3.1" in human


def test_pipeline_uses_third_party_backbone(installed):
    script = textwrap.dedent("""
        from c3llm import sdk
        pipe = sdk.Pipeline.from_plugins(decoder="encodec", backbone={"name": "toy-lm", "hidden_size": 16},
                                         refiner="nar")
        audio = pipe.text_to_audio("a dog barks", duration=0.5, seed=0)
        print(type(pipe.model.backbone).__module__, audio.sample_rate, audio.waveform.shape[-1])
    """)
    result = subprocess.run([sys.executable, "-c", script], env=installed, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    module, rate, samples = result.stdout.split()
    assert module == "c3llm_toy"
    assert int(samples) == round(0.5 * int(rate))


def test_blocking_the_third_party_plugin(installed):
    result = run_cli(installed, "-p", "no:toy", "plugins", "--json")
    assert result.returncode == 0, result.stderr
    assert "toy-lm" not in {e["name"] for e in json.loads(result.stdout)}
    env = dict(installed, C3LLM_DISABLE_PLUGINS="toy")
    assert "toy-lm" not in run_cli(env, "plugins").stdout


def test_third_party_codec_passes_the_trainable_codec_contract_and_trains(installed, tmp_path):
    """The contract suite is all a codec author needs: a third-party TrainableDecoder passes
    it, and the train-codec recipe then trains it with no change to c3llm."""
    script = textwrap.dedent(f"""
        import torch
        from c3llm.core.registry import get_registry
        from c3llm.testing.contracts import check_trainable_decoder
        from c3llm.app.training.codec import CodecTrainConfig, train_codec

        registry = get_registry()
        def reload(directory):
            codec = registry.build("decoder", {{"name": "toy-codec", "pretrained": str(directory)}})
            codec.load_pretrained()
            return codec
        check_trainable_decoder(registry.build("decoder", "toy-codec"), reload)
        codec = registry.build("decoder", "toy-codec")
        t = torch.arange(8000) / 8000
        clips = [torch.sin(2 * torch.pi * f * t)[None] * 0.5 for f in (220.0, 440.0, 880.0)]
        report = train_codec(codec, clips, CodecTrainConfig(steps=60, batch_size=2, eval_clips=0, lr=3e-3, log_every=10),
                             {str(tmp_path / "codec")!r}, progress=False)
        first, last = report["curve"][0]["loss"], report["curve"][-1]["loss"]
        print(type(codec).__module__, first > last, (reload({str(tmp_path / "codec")!r}) is not None))
    """)
    result = subprocess.run([sys.executable, "-c", script], env=installed, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["c3llm_toy.codec", "True", "True"]
