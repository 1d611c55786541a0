"""A corpus of bad inputs, table-driven: each case is (input, expected error class, a phrase
of the message), across the SDK, the launcher, configs, checkpoints and manifests. Every
case must end in a typed error within 10 s; the launcher's must print one line."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from click.testing import CliRunner

from c3llm import sdk
from c3llm.app.cli import main
from c3llm.app.run_config import parse_run_config
from c3llm.core.checkpoint import load_tensors, read_header
from c3llm.core.config import apply_overrides, load_file
from c3llm.core.errors import (
    C3LLMError,
    CheckpointError,
    ConfigError,
    InputError,
    MediaError,
    OutputError,
    UnknownComponentError,
)
from c3llm.core.registry import get_registry
from c3llm.core.roles.dataset import Sample

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.toml"
SECONDS_PER_CASE = 10.0


class Ctx:
    """What a case may use: the tiny pipeline, media files, a saved checkpoint, a scratch folder."""

    def __init__(self, pipe, media, checkpoint, tmp: Path):
        self.pipe, self.media, self._checkpoint, self.tmp = pipe, media, checkpoint, tmp

    def write(self, name: str, data: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        return path

    def ckpt(self, edit: Callable[[dict], Any] | None = None) -> Path:
        """A copy of the saved checkpoint, its pipeline.json changed by ``edit``."""
        folder = self.tmp / "ckpt"
        shutil.copytree(self._checkpoint, folder)
        if edit is not None:
            record = json.loads((folder / "pipeline.json").read_text())
            edit(record)
            (folder / "pipeline.json").write_text(json.dumps(record))
        return folder

    def run_config(self, **sections: Any) -> Any:
        data = load_file(TINY)
        for key, value in sections.items():
            data.setdefault(key, {}).update(value)
        return parse_run_config(data)

    def dataset(self, name: str, **config: Any) -> list:
        return list(get_registry().build("dataset", {"name": name, "root": str(self.tmp), **config}))


def _audio(seconds: float) -> sdk.Audio:
    return sdk.Audio(torch.zeros(1, int(seconds * 16000)), 16000)


def _nested(depth: int) -> str:
    return "a = " + "[" * depth + "]" * depth + "\n"


def _sparse_header(ctx: Ctx) -> Path:
    """A safetensors file whose header declares a 4 GiB tensor over a sparse file."""
    size = 4 * 2**30
    header = json.dumps({"weight": {"dtype": "F32", "shape": [2**30], "data_offsets": [0, size]}}).encode()
    path = ctx.tmp / "huge.safetensors"
    with path.open("wb") as handle:
        handle.write(len(header).to_bytes(8, "little") + header)
        handle.truncate(8 + len(header) + size)  # sparse: no block is written
    return path


def _safetensors(ctx: Ctx, header: dict, payload: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    return ctx.write("t.safetensors", len(raw).to_bytes(8, "little") + raw + payload)


def _full_disk(ctx: Ctx, monkeypatch) -> None:
    import errno

    import soundfile

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(soundfile, "write", no_space)
    target = ctx.tmp / "out" / "full.wav"
    try:
        _audio(0.1).save(target)
    finally:
        left = list((ctx.tmp / "out").iterdir())
        assert left == [], f"partial output left behind: {left}"


AUDIOCAPS_HEADER = "audiocap_id,youtube_id,start_time,caption\n"
CLOTHO_HEADER = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"

# (case id, call(ctx[, monkeypatch]), error class, phrase of the message)
CASES: list[tuple[str, Callable, type, str]] = [
    # -- SDK: text -> audio --------------------------------------------------------------
    ("t2a-duration-hour", lambda c: c.pipe.text_to_audio("a beep", duration=3599), InputError, "from 0.05 to 120"),
    ("t2a-duration-tiny", lambda c: c.pipe.text_to_audio("a beep", duration=1e-9), InputError, "from 0.05 to 120"),
    ("t2a-duration-nan", lambda c: c.pipe.text_to_audio("a beep", duration=math.nan), InputError, "positive number"),
    ("t2a-duration-inf", lambda c: c.pipe.text_to_audio("a beep", duration=math.inf), InputError, "positive number"),
    ("t2a-duration-negative", lambda c: c.pipe.text_to_audio("a beep", duration=-2), InputError, "positive number"),
    ("t2a-duration-bool", lambda c: c.pipe.text_to_audio("a beep", duration=True), InputError, "positive number"),
    ("t2a-duration-string", lambda c: c.pipe.text_to_audio("a beep", duration="2"), InputError, "positive number"),
    ("t2a-durations-count", lambda c: c.pipe.text_to_audio(["a", "b"], duration=[1.0]), InputError, "2 inputs but 1"),
    ("t2a-seed-huge", lambda c: c.pipe.text_to_audio("a beep", seed=2**70), InputError, "seed must be an integer"),
    ("t2a-seed-negative", lambda c: c.pipe.text_to_audio("a beep", seed=-1), InputError, "seed must be an integer"),
    ("a2t-seed-bool", lambda c: c.pipe.audio_to_text(c.media["wav"], seed=True), InputError, "seed must be an integer"),
    ("t2a-lone-surrogate", lambda c: c.pipe.text_to_audio("a \ud800 beep"), InputError, "not valid Unicode"),
    ("t2a-empty-text", lambda c: c.pipe.text_to_audio(""), InputError, "text is empty"),
    ("t2a-blank-text", lambda c: c.pipe.text_to_audio(" \t\n "), InputError, "text is empty"),
    ("t2a-none-text", lambda c: c.pipe.text_to_audio(None), InputError, "unsupported input"),
    ("t2a-bytes-text", lambda c: c.pipe.text_to_audio(b"a beep"), InputError, "unsupported input"),
    ("t2a-long-text", lambda c: c.pipe.text_to_audio("x" * 5000), InputError, "at most 2000"),
    ("t2a-empty-list", lambda c: c.pipe.text_to_audio([]), InputError, "empty list"),
    ("t2a-temperature-nan", lambda c: c.pipe.text_to_audio("a", duration=1, temperature=math.nan), ConfigError,
     "finite number"),
    ("t2a-temperature-huge", lambda c: c.pipe.text_to_audio("a", duration=1, temperature=1e9), ConfigError, "<= 100"),
    ("t2a-temperature-negative", lambda c: c.pipe.text_to_audio("a", duration=1, temperature=-1), ConfigError,
     ">= 0.0"),
    ("t2a-guidance-nan", lambda c: c.pipe.text_to_audio("a", duration=1, guidance_scale=math.nan), ConfigError,
     "finite number"),
    ("t2a-top-p-zero", lambda c: c.pipe.text_to_audio("a", duration=1, top_p=0.0), ConfigError, "top_p must be"),
    ("t2a-max-seconds-huge", lambda c: c.pipe.text_to_audio("a", max_seconds=1e6), ConfigError, "max_seconds must be"),
    ("t2a-top-k-string", lambda c: c.pipe.text_to_audio("a", duration=1, top_k="5"), ConfigError,
     "expected an integer"),
    ("t2a-misspelt-option", lambda c: c.pipe.text_to_audio("a", duration=1, tempreature=1.0), ConfigError,
     "Did you mean 'temperature'"),
    # -- SDK: audio -> text, reconstruct -------------------------------------------------
    ("a2t-max-tokens-huge", lambda c: c.pipe.audio_to_text(c.media["wav"], max_tokens=10**7), ConfigError,
     "max_tokens must be"),
    ("a2t-beams-huge", lambda c: c.pipe.audio_to_text(c.media["wav"], strategy="beam", num_beams=10**6),
     ConfigError, "num_beams must be"),
    ("a2t-strategy-typo", lambda c: c.pipe.audio_to_text(c.media["wav"], strategy="bean"), ConfigError,
     "Did you mean 'beam'"),
    ("a2t-missing-file", lambda c: c.pipe.audio_to_text(c.tmp / "nope.wav"), MediaError, "audio file not found"),
    ("a2t-empty-file", lambda c: c.pipe.audio_to_text(c.media["empty"]), MediaError, "empty (0 bytes)"),
    ("a2t-not-audio", lambda c: c.pipe.audio_to_text(c.media["text"]), MediaError, "cannot decode audio"),
    ("a2t-too-long", lambda c: c.pipe.audio_to_text(_audio(200.0)), InputError, "at most 120 s"),
    ("reconstruct-too-long", lambda c: c.pipe.reconstruct(_audio(200.0)), InputError, "at most 120 s"),
    ("a2t-seed-huge", lambda c: c.pipe.audio_to_text(c.media["wav"], seed=2**64), InputError, "seed must be"),
    # -- SDK: video -> audio -------------------------------------------------------------
    ("v2a-missing-file", lambda c: c.pipe.video_to_audio(c.tmp / "nope.mp4"), MediaError, "video file not found"),
    ("v2a-still-image", lambda c: c.pipe.video_to_audio(c.media["still"]), MediaError, "single frame"),
    ("v2a-not-video", lambda c: c.pipe.video_to_audio(c.media["text"]), MediaError, "cannot decode video"),
    ("v2a-pooling-typo", lambda c: c.pipe.video_to_audio(c.media["mp4"], video_pooling="max"), InputError,
     "video_pooling must be"),
    ("v2a-duration-hour", lambda c: c.pipe.video_to_audio(c.media["mp4"], duration=3599), InputError,
     "from 0.05 to 120"),
    ("v2a-texts-count", lambda c: c.pipe.video_to_audio([c.media["mp4"]] * 2, text=["a"]), InputError,
     "2 videos but 1 texts"),
    # -- media values and outputs --------------------------------------------------------
    ("audio-nan-samples", lambda c: sdk.Audio(torch.full((1, 10), math.nan), 16000), InputError, "NaN"),
    ("audio-bad-rate", lambda c: sdk.Audio(torch.zeros(1, 10), 0), InputError, "sample_rate"),
    ("save-unknown-suffix", lambda c: _audio(0.1).save(c.tmp / "x.mp3x"), OutputError, "unknown audio file type"),
    ("save-no-suffix", lambda c: _audio(0.1).save(c.tmp / "noext"), OutputError, "unknown audio file type"),
    ("save-under-a-file", lambda c: _audio(0.1).save(c.media["file"] / "x.wav"), OutputError, "cannot write"),
    ("save-full-disk", _full_disk, OutputError, "No space left"),
    # -- SDK: building ---------------------------------------------------------------------
    ("pretrained-missing", lambda c: sdk.Pipeline.from_pretrained(c.tmp / "nope"), CheckpointError, "not found"),
    ("plugins-typo", lambda c: sdk.Pipeline.from_plugins(decoder="encodecc", backbone="gemma"),
     UnknownComponentError, "Did you mean 'encodec'"),
    ("config-no-backbone", lambda c: sdk.Pipeline.from_config({"decoder": {"name": "encodec"}}), ConfigError,
     "missing section [backbone]"),
    # -- config files and values ---------------------------------------------------------
    ("config-binary", lambda c: load_file(c.write("bin.toml", bytes(range(256)))), ConfigError, "not UTF-8"),
    ("config-5000-deep-toml", lambda c: load_file(c.write("deep.toml", _nested(5000))), ConfigError, "nested"),
    ("config-5000-deep-json", lambda c: load_file(c.write("deep.json", "[" * 5000 + "]" * 5000)), ConfigError,
     "nested"),
    ("config-40-deep-toml", lambda c: load_file(c.write("d40.toml", _nested(40))), ConfigError, "nested more than"),
    ("config-huge-file", lambda c: load_file(c.write("big.toml", b"# " + b"x" * (11 * 2**20))), ConfigError,
     "at most"),
    ("config-top-level-list", lambda c: load_file(c.write("list.json", "[1, 2]")), ConfigError, "top level"),
    ("config-syntax", lambda c: load_file(c.write("bad.toml", "[run\nname = 1")), ConfigError, "cannot parse"),
    ("config-missing-file", lambda c: load_file(c.tmp / "none.toml"), ConfigError, "not found"),
    ("config-temperature-nan", lambda c: c.run_config(generate={"sampling": {"temperature": math.nan}}),
     ConfigError, "generate.sampling.temperature: expected a finite number"),
    ("config-guidance-inf", lambda c: c.run_config(generate={"sampling": {"guidance_scale": math.inf}}),
     ConfigError, "expected a finite number"),
    ("config-duration-nan", lambda c: c.run_config(generate={"duration": math.nan}), ConfigError, "finite number"),
    ("config-duration-absurd", lambda c: c.run_config(generate={"duration": 1e6}), ConfigError, "<= 120"),
    ("config-max-tokens-absurd", lambda c: c.run_config(generate={"text": {"max_tokens": 10**9}}), ConfigError,
     "max_tokens must be"),
    ("config-run-name-escapes", lambda c: c.run_config(run={"name": "../../x"}), ConfigError, "path separator"),
    ("config-run-name-dotdot", lambda c: c.run_config(run={"name": ".."}), ConfigError, "relative folder"),
    ("config-run-name-nul", lambda c: c.run_config(run={"name": "a\x00b"}), ConfigError, "control character"),
    ("config-seed-2**70", lambda c: c.run_config(run={"seed": 2**70}), ConfigError, "does not fit in 64 bits"),
    ("config-seed-negative", lambda c: c.run_config(run={"seed": -1}), ConfigError, "seed must be >= 0"),
    ("config-eval-label-escapes", lambda c: c.run_config(data={"eval": {"../x": {"name": "synthetic", "root": "w"}}}),
     ConfigError, "split label"),
    ("config-lr-inf", lambda c: c.run_config(train={"lm": {"lr": math.inf}}), ConfigError, "finite number"),
    ("override-deep", lambda c: apply_overrides({}, ["a.b=" + "[" * 5000 + "]" * 5000]), ConfigError, "nested"),
    ("override-not-dotted", lambda c: apply_overrides({}, ["a..b=1"]), ConfigError, "not a dotted key"),
    # -- checkpoints -----------------------------------------------------------------------
    ("ckpt-no-components", lambda c: sdk.Pipeline.from_pretrained(c.ckpt(lambda r: r.pop("components"))),
     CheckpointError, "'components' must be a table"),
    ("ckpt-no-backbone", lambda c: sdk.Pipeline.from_pretrained(c.ckpt(lambda r: r["components"].pop("backbone"))),
     CheckpointError, "at least decoder and backbone"),
    ("ckpt-component-no-config", lambda c: sdk.Pipeline.from_pretrained(
        c.ckpt(lambda r: r["components"]["decoder"].pop("config"))), CheckpointError, "needs a 'name' string"),
    ("ckpt-newer-format", lambda c: sdk.Pipeline.from_pretrained(c.ckpt(lambda r: r.update(format_version=99))),
     CheckpointError, "newer c3llm"),
    ("ckpt-unknown-format-version", lambda c: sdk.Pipeline.from_pretrained(
        c.ckpt(lambda r: r.update(format_version="one"))), CheckpointError, "unknown format_version"),
    ("ckpt-missing-format-version", lambda c: sdk.Pipeline.from_pretrained(
        c.ckpt(lambda r: r.pop("format_version"))), CheckpointError, "unknown format_version"),
    ("ckpt-not-a-record", lambda c: sdk.Pipeline.from_pretrained(c.ckpt(lambda r: r.clear())), CheckpointError,
     "is not a c3llm-pipeline file"),
    ("ckpt-unknown-plugin", lambda c: sdk.Pipeline.from_pretrained(
        c.ckpt(lambda r: r["components"]["backbone"].update(name="mystery-lm"))), CheckpointError, "not installed"),
    ("ckpt-tokenizer-outside", lambda c: sdk.Pipeline.from_pretrained(
        c.ckpt(lambda r: r["components"]["backbone"]["config"].update(tokenizer_path="../../../etc/passwd"))),
     CheckpointError, "points outside the checkpoint folder"),
    ("ckpt-tokenizer-absolute", lambda c: sdk.Pipeline.from_pretrained(
        c.ckpt(lambda r: r["components"]["backbone"]["config"].update(tokenizer_path="/etc/passwd"))),
     CheckpointError, "points outside the checkpoint folder"),
    ("ckpt-json-binary", lambda c: sdk.Pipeline.from_pretrained(_binary_record(c)), CheckpointError,
     "not valid JSON"),
    ("ckpt-json-deep", lambda c: sdk.Pipeline.from_pretrained(_deep_record(c)), CheckpointError, "nested too deeply"),
    ("ckpt-weights-swapped", lambda c: sdk.Pipeline.from_pretrained(_swapped_weights(c)), CheckpointError,
     "does not hold the expected tensors"),
    ("tensors-4gib-sparse", lambda c: load_tensors(_sparse_header(c), expected={"weight": (4,)}), CheckpointError,
     "does not hold the expected tensors"),
    ("tensors-header-too-long", lambda c: read_header(c.write("h.safetensors", (10**9).to_bytes(8, "little") + b"{}")),
     CheckpointError, "header claims"),
    ("tensors-beyond-file", lambda c: read_header(_safetensors(
        c, {"w": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}}, b"\0" * 8)), CheckpointError,
     "does not fit"),
    ("tensors-bad-dtype", lambda c: read_header(_safetensors(
        c, {"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, b"\0" * 16)), CheckpointError,
     "malformed header"),
    ("tensors-short-file", lambda c: read_header(c.write("s.safetensors", b"\1\0")), CheckpointError, "too short"),
    # -- manifests -------------------------------------------------------------------------
    ("audiocaps-not-utf8", lambda c: (c.write("train.csv", AUDIOCAPS_HEADER.encode() + b"1,abc,0,a \xff beep\n"),
                                       c.dataset("audiocaps")), InputError, "train.csv:2: not UTF-8"),
    ("audiocaps-huge-field", lambda c: (c.write("train.csv", AUDIOCAPS_HEADER + "1,abc,0,\"" + "a" * 200_000 + "\"\n"),
                                        c.dataset("audiocaps")), InputError, "not a readable CSV row"),
    ("audiocaps-wrong-header", lambda c: (c.write("train.csv", "id,caption\n1,a\n"), c.dataset("audiocaps")),
     InputError, "expected the header"),
    ("audiocaps-short-row", lambda c: (c.write("train.csv", AUDIOCAPS_HEADER + "1,abc,0\n"), c.dataset("audiocaps")),
     InputError, "train.csv:2: expected 4 columns"),
    ("audiocaps-bad-start", lambda c: (c.write("train.csv", AUDIOCAPS_HEADER + "1,abc,-5,a beep\n"),
                                       c.dataset("audiocaps")), InputError, "non-negative integer"),
    ("audiocaps-id-escapes", lambda c: (c.write("train.csv", AUDIOCAPS_HEADER + "1,../../../x,0,a beep\n"),
                                        c.dataset("audiocaps")), InputError, "path separator"),
    ("clotho-name-escapes", lambda c: (c.write("clotho_captions_development.csv",
                                               CLOTHO_HEADER + "../../x.wav,a,b,c,d,e\n"), c.dataset("clotho")),
     InputError, "path separator"),
    ("manifest-missing", lambda c: c.dataset("audiocaps"), ConfigError, "manifest not found"),
    ("vas-not-utf8", lambda c: (c.write("vas_train.txt", b"dog/v1\n\xfe\xff\n"), c.dataset("vas")), InputError,
     "vas_train.txt:2: not UTF-8"),
    ("vas-bad-row", lambda c: (c.write("vas_train.txt", "dog\n"), c.dataset("vas")), InputError,
     "expected <class>/<video_id>"),
    ("synthetic-row-not-object", lambda c: (c.write("metadata.jsonl", "[1, 2]\n"), c.dataset("synthetic")),
     InputError, "expected a JSON object"),
    ("synthetic-not-utf8", lambda c: (c.write("metadata.jsonl", b'{"id": "\xff"}\n'), c.dataset("synthetic")),
     InputError, "metadata.jsonl:1: not UTF-8"),
    ("sample-id-nul", lambda c: Sample(id="a\x00b", split="test"), InputError, "control character"),
    ("sample-id-empty", lambda c: Sample(id="", split="test"), InputError, "is empty"),
    ("sample-id-surrogate", lambda c: Sample(id="a\udcff", split="test"), InputError, "not valid Unicode"),
]


def _binary_record(ctx: Ctx) -> Path:
    folder = ctx.ckpt()
    (folder / "pipeline.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    return folder


def _deep_record(ctx: Ctx) -> Path:
    folder = ctx.ckpt()
    (folder / "pipeline.json").write_text("[" * 100_000 + "]" * 100_000)
    return folder


def _swapped_weights(ctx: Ctx) -> Path:
    folder = ctx.ckpt()
    shutil.copyfile(folder / "refiner" / "weights.safetensors", folder / "decoder" / "weights.safetensors")
    return folder


@pytest.mark.parametrize("call, error, phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_a_typed_error(call, error, phrase, tiny_pipe, media, checkpoint, tmp_path, monkeypatch):
    ctx = Ctx(tiny_pipe, media, checkpoint, tmp_path)
    started = time.perf_counter()
    with pytest.raises(error) as info:
        call(ctx, monkeypatch) if call is _full_disk else call(ctx)
    assert isinstance(info.value, C3LLMError)
    assert phrase in str(info.value)
    assert "\n" not in str(info.value), "errors are one line"
    assert time.perf_counter() - started < SECONDS_PER_CASE


def test_the_corpus_is_large_enough():
    assert len(CASES) + len(CLI_CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


# -- the launcher: one line, exit status 2, the typed error under --debug -------------------


def _cli_args(tmp: Path, checkpoint: Path, media: dict) -> dict[str, list[str]]:
    binary = tmp / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    broken = tmp / "broken"
    shutil.copytree(checkpoint, broken)
    record = json.loads((broken / "pipeline.json").read_text())
    record["format_version"] = "x"
    (broken / "pipeline.json").write_text(json.dumps(record))
    return {
        "binary-config": ["run", str(binary), "--dry-run"],
        "run-name-escapes": [str(TINY), "--dry-run", "--set", "run.name=../../x"],
        "temperature-nan": [str(TINY), "--dry-run", "--set", "generate.sampling.temperature=nan"],
        "duration-absurd": [str(TINY), "--dry-run", "--set", "generate.duration=1e6"],
        "seed-2**70": [str(TINY), "--dry-run", "--set", f"run.seed={2**70}"],
        "deep-override": [str(TINY), "--dry-run", "--set", "run.x=" + "[" * 3000 + "]" * 3000],
        "generate-hour": ["generate", "--checkpoint", str(checkpoint), "--text", "a beep", "--duration", "3599",
                          "--out", str(tmp / "x.wav")],
        "generate-seed-huge": ["generate", "--checkpoint", str(checkpoint), "--text", "a beep", "--seed",
                               str(2**70), "--out", str(tmp / "x.wav")],
        "generate-unknown-suffix": ["generate", "--checkpoint", str(checkpoint), "--text", "a beep", "--duration",
                                    "0.2", "--out", str(tmp / "x.mp3x")],
        "generate-out-under-a-file": ["generate", "--checkpoint", str(checkpoint), "--text", "a beep", "--duration",
                                      "0.2", "--out", str(media["file"] / "x.wav")],
        "generate-broken-checkpoint": ["generate", "--checkpoint", str(broken), "--text", "a", "--out",
                                       str(tmp / "x.wav")],
        "generate-surrogate-text": ["generate", "--checkpoint", str(checkpoint), "--text", "a \udcff beep",
                                    "--out", str(tmp / "x.wav")],
    }


CLI_CASES = [
    ("binary-config", ConfigError, "not UTF-8"),
    ("run-name-escapes", ConfigError, "path separator"),
    ("temperature-nan", ConfigError, "expected a finite number"),
    ("duration-absurd", ConfigError, "<= 120"),
    ("seed-2**70", ConfigError, "does not fit in 64 bits"),
    ("deep-override", ConfigError, "nested"),
    ("generate-hour", InputError, "from 0.05 to 120"),
    ("generate-seed-huge", InputError, "seed must be an integer"),
    ("generate-unknown-suffix", OutputError, "unknown audio file type"),
    ("generate-out-under-a-file", OutputError, "cannot write"),
    ("generate-broken-checkpoint", CheckpointError, "unknown format_version"),
    ("generate-surrogate-text", InputError, "not valid Unicode"),
]


@pytest.mark.parametrize("case, error, phrase", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_launcher_prints_one_line(case, error, phrase, checkpoint, media, tmp_path):
    args = _cli_args(tmp_path, checkpoint, media)[case]
    started = time.perf_counter()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert phrase in result.output and "Traceback" not in result.output
    assert time.perf_counter() - started < SECONDS_PER_CASE
    debug = CliRunner().invoke(main, ["--debug", *args])
    assert isinstance(debug.exception, error), debug.exception
