"""``c3llm-run``: the config launcher.

``c3llm-run CONFIG.toml`` runs the stages the config's ``[run] stages`` names; subcommands
run one stage or inspect the installation. Errors print as one line (``--debug`` for the
traceback) and exit non-zero.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path

import click

from c3llm.core.errors import C3LLMError

log = logging.getLogger("c3llm")

EXIT_USER_ERROR = 2


class Launcher(click.Group):
    """A group where ``c3llm-run CONFIG.toml …`` means ``c3llm-run run CONFIG.toml …``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
        # skip values of the group's own options (-p NAME)
        while first is not None and first > 0 and args[first - 1] in ("-p", "--plugin"):
            rest = next((i for i, a in enumerate(args[first + 1:], first + 1) if not a.startswith("-")), None)
            first = rest
        if first is not None and args[first] not in self.commands and args[first].endswith((".toml", ".json")):
            args = args[:first] + ["run"] + args[first:]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except C3LLMError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {' '.join(str(exc).split())}", err=True)
            ctx.exit(EXIT_USER_ERROR)
        except OSError as exc:  # the machine's, on the user's paths: a full disk, a read-only folder
            if ctx.obj and ctx.obj.get("debug"):
                raise
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(EXIT_USER_ERROR)


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


@click.group(cls=Launcher, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-p", "--plugin", "blocked", multiple=True, metavar="no:NAME",
              help="Block a plugin by entry-point name (repeatable), e.g. -p no:clap.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="c3llm")
@click.pass_context
def main(ctx: click.Context, blocked: tuple[str, ...], debug: bool, verbose: int) -> None:
    """C3LLM launcher: `c3llm-run CONFIG.toml` runs the stages the config names."""
    _setup_logging(verbose)
    if "torch" not in sys.modules:
        # idle OpenMP threads sleep instead of spinning: on a busy 2-core machine the same
        # training ran 6.4x faster (benchmarks/thread_policy.py, BENCHMARKS.md)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    names = []
    for item in blocked:
        if not item.startswith("no:") or len(item) <= 3:
            raise click.BadParameter(f"expected no:NAME, got {item!r}", param_hint="-p")
        names.append(item[3:])
    ctx.obj = {"debug": debug, "disabled": tuple(names)}


def config_options(func):
    """``CONFIG`` argument with ``--set`` overrides."""

    @click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="Override a config value, e.g. --set backbone.lora_r=32 (repeatable).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def load_run_config(ctx: click.Context, config: Path, overrides: tuple[str, ...]):
    from c3llm.app.run_config import parse_run_config
    from c3llm.core.config import apply_overrides, load_file
    from c3llm.core.registry import get_registry

    registry = get_registry(ctx.obj["disabled"])
    data = apply_overrides(load_file(config), overrides)
    return parse_run_config(data, base_dir=config.resolve().parent, registry=registry), registry


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List registered components by role, with provider and version."""
    from c3llm.core.registry import get_registry

    registry = get_registry(ctx.obj["disabled"])
    specs = registry.specs()
    if as_json:
        click.echo(json.dumps([
            {"role": s.role, "name": s.name, "plugin": s.plugin, "distribution": s.distribution,
             "version": s.version, "description": s.description} for s in specs
        ], indent=2))
        return
    role = None
    for s in specs:
        if s.role != role:
            role = s.role
            click.echo(f"{role}:")
        desc = f" — {s.description}" if s.description else ""
        click.echo(f"  {s.name:<18} {s.provider}{desc}")


@main.command("run")
@config_options
@click.option("--dry-run", is_flag=True, help="Print the resolved config (all defaults filled) and stop.")
@click.option("--stage", "stages", multiple=True, help="Run these stages instead of [run] stages.")
@click.pass_context
def run_cmd(ctx: click.Context, config: Path, overrides: tuple[str, ...], dry_run: bool,
            stages: tuple[str, ...]) -> None:
    """Run the stages a config names (or print it resolved with --dry-run)."""
    import tomli_w

    from c3llm.core.config import strip_none

    run_config, registry = load_run_config(ctx, config, overrides)
    if dry_run:
        click.echo(tomli_w.dumps(strip_none(run_config.to_mapping(registry))))
        return
    from c3llm.app.stages import run_stages

    run_stages(run_config, stages or run_config.run.stages, registry=registry)


def _stage_command(stage: str, doc: str) -> None:
    @main.command(stage, help=doc)
    @config_options
    @click.pass_context
    def command(ctx: click.Context, config: Path, overrides: tuple[str, ...]) -> None:
        from c3llm.app.stages import run_stages

        run_config, registry = load_run_config(ctx, config, overrides)
        run_stages(run_config, [stage], registry=registry)


#: What ``pretrain --quick`` changes: a smaller foundation corpus and fewer steps.
PRETRAIN_QUICK_OVERRIDES = (
    "pretrain.corpus.clips=240",
    "pretrain.corpus.video_clips=60",
    "pretrain.lm.train.steps=200",
    "pretrain.clap.train.steps=150",
    "pretrain.video.train.steps=100",
)


@main.command("pretrain")
@config_options
@click.option("--quick", is_flag=True, help="A smaller foundation corpus and fewer steps (minutes).")
@click.pass_context
def pretrain_cmd(ctx: click.Context, config: Path, overrides: tuple[str, ...], quick: bool) -> None:
    """Pretrain the foundation models (text LM, CLAP, video CNNs) on the foundation corpus."""
    from c3llm.app.stages import run_stages

    run_config, registry = load_run_config(ctx, config, (*(PRETRAIN_QUICK_OVERRIDES if quick else ()), *overrides))
    run_stages(run_config, ["pretrain"], registry=registry)


_stage_command("train-codec", "Train the codec on the training split's audio.")
_stage_command("prepare", "Cache codec codes and encoder features for the config's datasets.")
_stage_command("train", "Train the LM (eq. 1) and the NAR refiner (eq. 2); resumes if interrupted.")
_stage_command("predict", "Generate audio and captions for the evaluation splits (resumes).")
_stage_command("evaluate", "Generate for the evaluation splits and score them; writes the report.")

#: What ``demo --quick`` changes: a smaller world and fewer steps (CI runs it in minutes).
QUICK_OVERRIDES = (
    "run.name=demo-quick",
    "data.train.generate.num_train=120",
    "data.train.generate.num_test=24",
    "data.train.generate.num_test_novel=24",
    "data.limit_eval=16",
    "data.reference.generate.num_train=180",
    "train.lm.steps=300",
    "train.nar.steps=100",
)


def shipped_config(name: str) -> Path:
    """A config shipped inside the package (``c3llm/configs/NAME``)."""
    from importlib.resources import files

    return Path(str(files("c3llm") / "configs" / name))


@main.command()
@click.option("--quick", is_flag=True, help="A small world and few steps (minutes, for CI and a first look).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Parent folder of the run folder and the generated world.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value.")
@click.option("--stage", "stages", multiple=True, help="Run only these stages.")
@click.pass_context
def demo(ctx: click.Context, quick: bool, out_dir: Path, overrides: tuple[str, ...], stages: tuple[str, ...]) -> None:
    """The main job on the embedded default: world, codec, features, LM + NAR, generation,
    evaluation and report — from nothing, on a CPU."""
    from c3llm.app.stages import run_stages

    config = shipped_config("demo.toml")
    sets = (f"run.out_dir={json.dumps(str(out_dir.absolute()))}", *(QUICK_OVERRIDES if quick else ()), *overrides)
    run_config, registry = load_run_config(ctx, config, sets)
    context = run_stages(run_config, stages or run_config.run.stages, registry=registry)
    report = context.directory / "eval" / "report.md"
    click.echo(f"run folder: {context.directory}")
    if report.is_file():
        click.echo(f"report:     {report}")


@main.command()
@click.option("--checkpoint", type=click.Path(path_type=Path), help="A saved pipeline or run directory.")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
              help="Build from a config instead of a checkpoint (untrained unless it loads weights).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config overrides (with --config); with --checkpoint, new places of moved models, "
              "e.g. --set backbone.pretrained=/new/gemma-2b.")
@click.option("--text", help="Caption for text-to-audio (or with --video: video+text-to-audio).")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), help="Video for video-to-audio.")
@click.option("--audio", type=click.Path(dir_okay=False, path_type=Path), help="Audio to caption.")
@click.option("--duration", type=float, help="Seconds of audio to generate.")
@click.option("--seed", type=int, help="Seed for sampling.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the WAV.")
@click.option("--jobs", type=click.Path(dir_okay=False, path_type=Path),
              help="A JSONL or CSV file of jobs (text/video/audio, seconds, seed, output): run them all.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("outputs"),
              show_default=True, help="Folder for the outputs and results.jsonl of --jobs.")
@click.option("--batch-size", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Jobs per batched call (--jobs).")
@click.pass_context
def generate(ctx, checkpoint, config, overrides, text, video, audio, duration, seed, out, jobs, out_dir,
             batch_size) -> None:
    """Generate audio from --text/--video, a caption from --audio, or everything a --jobs file lists."""
    from c3llm.core.errors import InputError
    from c3llm.sdk.pipeline import Pipeline

    if (checkpoint is None) == (config is None):
        raise InputError("give exactly one of --checkpoint DIR or --config FILE")
    if jobs is not None and (audio or text or video):
        raise InputError("--jobs runs the requests of a file; drop --text/--video/--audio")
    if jobs is None and audio is None and text is None and video is None:
        raise InputError("nothing to do: give --text, --video, --audio or --jobs")
    if audio is not None and (text or video):
        raise InputError("--audio (captioning) cannot be combined with --text/--video")
    job_list = None
    if jobs is not None:
        from c3llm.app.jobs import read_jobs

        job_list = read_jobs(jobs)  # checked before the model loads
    if checkpoint is not None:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise InputError(f"--set {bad[0]!r}: expected KEY=PATH, e.g. backbone.pretrained=/new/gemma-2b")
        pipe = Pipeline.from_pretrained(checkpoint, disabled_plugins=ctx.obj["disabled"],
                                        paths=dict(o.split("=", 1) for o in overrides))
    else:
        pipe = Pipeline.from_config(config, overrides, disabled_plugins=ctx.obj["disabled"])
    if job_list is not None:
        from c3llm.app.jobs import RESULTS_FILE, run_jobs

        counts = run_jobs(pipe, job_list, out_dir, batch_size=batch_size)
        click.echo(f"jobs: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; "
                   f"results in {out_dir / RESULTS_FILE}")
        return
    if audio is not None:
        click.echo(pipe.audio_to_text(audio, seed=seed))
        return
    if out is None:
        raise InputError("--out FILE.wav is required for audio generation")
    if video is not None:
        result = pipe.video_to_audio(video, text=text, duration=duration, seed=seed)
    else:
        result = pipe.text_to_audio(text, duration=duration, seed=seed)
    result.save(out)
    click.echo(f"wrote {out} ({result.duration:.2f} s at {result.sample_rate} Hz)")


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on (local only by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.pass_context
def serve(ctx: click.Context, checkpoint: Path, host: str, port: int) -> None:
    """A local web page for the three tasks on CHECKPOINT (needs: pip install 'c3llm[web]')."""
    from c3llm.app.web import serve as serve_app
    from c3llm.sdk.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(checkpoint, disabled_plugins=ctx.obj["disabled"])
    serve_app(pipe, host=host, port=port)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
