"""Generation for an evaluation split: every task, plus the paper's ablations.

For each clip of the split (resumable: finished clips are skipped) it writes::

    t2a/{id}.wav          text -> audio from the clip's first caption (full model)
    t2a_no_nar/{id}.wav   the same coarse codes decoded without the refiner (ablation)
    v2a/{id}.wav          video -> audio (full model)
    v2a_no_nar/{id}.wav   the same coarse codes without the refiner (ablation)
    v2a_pooled/{id}.wav   video -> audio from mean-pooled video features (ablation: no timing)
    codec/{id}.wav        the reference through the codec (encode -> decode): the ceiling of T2A/V2A
    captions.jsonl        audio -> text: {"id", "caption", "references"}

Audio lasts as long as the reference clip, so metrics compare like with like. Clips without a
video (AudioCaps, Clotho) get no ``v2a*`` outputs; the other tasks run as usual. ``{id}`` is
:func:`~c3llm.core.paths.file_stem` of the sample id: the id itself when it is a plain file
name, else a sanitised name with a hash, never a path out of ``out_dir``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from c3llm.core.errors import InputError
from c3llm.core.media import Audio, load_audio, load_video
from c3llm.core.paths import file_stem
from c3llm.sdk.pipeline import Pipeline

log = logging.getLogger(__name__)

CAPTIONS_FILE = "captions.jsonl"
AUDIO_OUTPUTS = ("t2a", "t2a_no_nar", "v2a", "v2a_no_nar", "v2a_pooled", "codec")


def read_captions(path: Path) -> dict[str, dict[str, Any]]:
    """``captions.jsonl`` rows by clip id (the first row of an id wins)."""
    rows: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return rows
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number} is not JSON ({exc}); delete the file to generate captions again") from exc
        rows.setdefault(str(row["id"]), row)
    return rows


def _done(out_dir: Path, sample, captions_done: set[str], tasks: Sequence[str]) -> bool:
    return all((out_dir / t / f"{file_stem(sample.id)}.wav").is_file() for t in tasks_for(sample, tasks)) \
        and sample.id in captions_done


def tasks_for(sample, tasks: Sequence[str]) -> list[str]:
    """The audio outputs a clip gets: no ``v2a*`` for a clip without a video."""
    return [t for t in tasks if sample.video_path is not None or not t.startswith("v2a")]


def generate_for_split(pipe: Pipeline, samples, out_dir: Path, *, seed: int = 0, batch_size: int = 8,
                       progress: bool = True) -> Path:
    """Generate every output above for ``samples`` into ``out_dir`` (see module doc).

    Only the SDK's public API runs here, so what is evaluated is what ships: batch ``b``
    (clips ``b * batch_size ...``) is generated with ``seed + b * batch_size``, exactly as
    ``pipe.text_to_audio(captions, duration=..., seed=...)`` on the same clips.
    """
    from c3llm.core.progress import progress_bar

    out_dir = Path(out_dir)
    tasks = [t for t in AUDIO_OUTPUTS if "v2a" in pipe.tasks or not t.startswith("v2a")]
    for t in tasks:
        (out_dir / t).mkdir(parents=True, exist_ok=True)
    captions_file = out_dir / CAPTIONS_FILE
    done_captions = set(read_captions(captions_file)) if "a2t" in pipe.tasks else {s.id for s in samples}
    todo = [s for s in samples if not _done(out_dir, s, done_captions, tasks)]
    log.info("generate %s: %d clips (%d already done)", out_dir.name, len(todo), len(samples) - len(todo))
    bar = progress_bar(len(todo), f"generate {out_dir.name}", unit="clip", enabled=progress)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        batch_seed = seed + start
        refs = [load_audio(s.audio_path) for s in batch]
        # a reference longer than [generate.sampling] max_seconds is matched for its first max_seconds
        durations = [min(r.duration, pipe.generate_defaults.sampling.max_seconds) for r in refs]
        # text -> audio, with and without the refiner (the same coarse tokens)
        tokens = pipe.text_to_tokens([s.captions[0] for s in batch], duration=durations, seed=batch_seed)
        for name, refine in (("t2a", True), ("t2a_no_nar", False)):
            _save_all(batch, pipe.tokens_to_audio(tokens, refine=refine), out_dir / name)
        # video -> audio, and the mean-pooled-video ablation
        with_video = [i for i, s in enumerate(batch) if s.video_path is not None]
        if "v2a" in pipe.tasks and with_video:  # clips without a video (audio-only sets) skip V2A
            clips = [batch[i] for i in with_video]
            videos = [load_video(s.video_path, max_seconds=durations[i]) for i, s in zip(with_video, clips)]
            spans = [durations[i] for i in with_video]
            tokens = pipe.video_to_tokens(videos, duration=spans, seed=batch_seed)
            for name, refine in (("v2a", True), ("v2a_no_nar", False)):
                _save_all(clips, pipe.tokens_to_audio(tokens, refine=refine), out_dir / name)
            _save_all(clips, pipe.video_to_audio(videos, duration=spans, seed=batch_seed, video_pooling="mean"),
                      out_dir / "v2a_pooled")
        # the references through the codec: the best generated audio can sound with this codec
        _save_all(batch, [pipe.reconstruct(r) for r in refs], out_dir / "codec")
        # audio -> text
        if "a2t" in pipe.tasks:
            captions = pipe.audio_to_text(refs, seed=batch_seed)
            with captions_file.open("a", encoding="utf-8") as fh:
                for s, caption in zip(batch, captions):
                    if s.id not in done_captions:
                        fh.write(json.dumps({"id": s.id, "caption": caption, "references": list(s.captions)}) + "\n")
        bar.update(len(batch))
        log.info("generate %s: %d/%d clips", out_dir.name, start + len(batch), len(todo))
    bar.close()
    return out_dir


def _save_all(samples, audios: Sequence[Audio], folder: Path) -> None:
    for s, a in zip(samples, audios):
        a.save(folder / f"{file_stem(s.id)}.wav")  # atomic: temp file + rename
