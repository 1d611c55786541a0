"""The ``pretrain`` stage: the foundation corpus, then each model of ``[pretrain] models``.

Everything lands under ``[pretrain] root`` (default ``{out_dir}/foundation``, shared by the
runs of one out_dir), each in a folder keyed by the hash of what made it (:mod:`.cache`),
with a stable link per model that configs name::

    {root}/corpus -> corpus-<key>/   corpus.safetensors, clips.json, pretrain.json
    {root}/lm     -> lm-<key>/       HF model dir      backbone.pretrained = "{root}/lm"
    {root}/clap   -> clap-<key>/     HF CLAP dir       audio_encoder.pretrained = "{root}/clap"
    {root}/video  -> video-<key>/    <cnn>-rgb.pth, <cnn>-flow.pth
                                     video_encoder.weights / flow_weights = "{root}/video/<cnn>-….pth"
    {root}/.work/<kind>-<key>/       resumable training checkpoints (removed when done)
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from c3llm.app.foundation.dataset import corpus_summary, read_corpus, write_corpus
from c3llm.app.pretrain.cache import cached, config_key, marker
from c3llm.app.pretrain.settings import PretrainSection
from c3llm.core.config import to_mapping
from c3llm.core.media import Audio

log = logging.getLogger(__name__)


#: ``[pretrain] root`` when unset.
DEFAULT_ROOT = "{out_dir}/foundation"


def pretrain_root(section: PretrainSection, out_dir: str | Path, run_dir: Path) -> Path:
    """``[pretrain] root`` with ``{out_dir}`` / ``{run_dir}`` expanded (also for the default)."""
    out = str(Path(out_dir).expanduser().absolute())
    root = section.root if section.root is not None else DEFAULT_ROOT  # a literal default would not round-trip
    return Path(root.replace("{out_dir}", out).replace("{run_dir}", str(run_dir))).expanduser().absolute()


def run_pretrain(section: PretrainSection, root: Path, registry, *, progress: bool = True) -> dict[str, Path]:
    """Make (or reuse) the corpus and each model of ``section.models``; their folders by kind."""
    from c3llm.app.pretrain.clap import pretrain_clap
    from c3llm.app.pretrain.lm import pretrain_lm
    from c3llm.app.pretrain.video import pretrain_video

    data = to_mapping(section.corpus)
    folders = {"corpus": cached(root, "corpus", data, lambda tmp: write_corpus(section.corpus, tmp, progress=progress))}
    corpus = read_corpus(folders["corpus"], section.corpus)
    log.info("pretrain: foundation corpus %s", corpus_summary(corpus))
    clips = None
    for kind in section.models:
        config: dict[str, Any] = {"corpus": data, kind: to_mapping(getattr(section, kind)), "seed": section.seed}
        work = root / ".work" / f"{kind}-{config_key(config)}"
        if kind == "lm":
            def build(tmp: Path) -> dict:
                return pretrain_lm(registry, section.lm, corpus.texts(), tmp, work, seed=section.seed, progress=progress)
        elif kind == "clap":
            clips = clips or [Audio(a[None], section.corpus.sample_rate) for a in corpus.audio]
            held = min(100, max(2, len(clips) // 10))

            def build(tmp: Path) -> dict:
                return pretrain_clap(registry, section.clap, clips, corpus.captions, tmp, work, held_out=held,
                                     seed=section.seed, progress=progress)
        else:
            held = max(1, corpus.frames.shape[0] // 10) if corpus.frames.shape[0] > 1 else 0

            def build(tmp: Path) -> dict:
                return pretrain_video(registry, section.video, corpus, tmp, work, held_out=held, seed=section.seed,
                                      progress=progress)
        folders[kind] = cached(root, kind, config, build)
        shutil.rmtree(work, ignore_errors=True)
        record = marker(folders[kind])
        log.info("pretrain %s: %s (%.0f s when built) -> %s", kind, _brief(record.get("report", {})),
                 record.get("seconds", 0), root / kind)
    return folders


def _brief(report: dict[str, Any]) -> str:
    keys = ("loss_first", "loss_last", "held_out")
    return ", ".join(f"{k} {report[k]}" for k in keys if k in report) or "done"


def stage_pretrain(ctx) -> None:
    """Launcher stage: :func:`run_pretrain` with the run's ``[pretrain]`` section."""
    section = ctx.config.pretrain
    root = pretrain_root(section, ctx.config.run.out_dir, ctx.directory)
    run_pretrain(section, root, ctx.registry, progress=ctx.progress)
