"""Generation for an evaluation split: every task, plus the paper's ablations.

For each clip of the split (resumable: finished clips are skipped) it writes::

    t2a/{id}.wav          text -> audio from the clip's first caption (full model)
    t2a_no_nar/{id}.wav   the same coarse codes decoded without the refiner (ablation)
    v2a/{id}.wav          video -> audio (full model)
    v2a_no_nar/{id}.wav   the same coarse codes without the refiner (ablation)
    v2a_pooled/{id}.wav   video -> audio from mean-pooled video features (ablation: no timing)
    codec/{id}.wav        the reference through the codec (encode -> decode): the ceiling of T2A/V2A
    captions.jsonl        audio -> text: {"id", "caption", "references"}

Audio lasts as long as the reference clip, so metrics compare like with like.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from c3llm.core.errors import InputError
from c3llm.core.media import Audio, load_audio, load_video
from c3llm.method.generation import codes_to_audio, generate_acoustic, generate_text

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


def _save(audio: Audio, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    audio.save(tmp)
    os.replace(tmp, path)


@torch.no_grad()
def resynthesize(codec, audio: Audio) -> Audio:
    """``audio`` through ``codec`` (encode -> decode), at the codec's rate, same length: what
    the best generation can sound like with this codec, and the like-for-like version of a
    baseline that returns real recordings."""
    wav = audio.to(codec.sample_rate, codec.channels).waveform[None].to(codec.device)  # (1, C, T)
    return Audio(codec.decode(codec.encode(wav))[0, :, : wav.shape[-1]].cpu(), codec.sample_rate)  # (C, T)


def _done(out_dir: Path, sample_id: str, captions_done: set[str], tasks: Sequence[str]) -> bool:
    return all((out_dir / t / f"{sample_id}.wav").is_file() for t in tasks) and sample_id in captions_done


@torch.no_grad()
def generate_for_split(pipe, samples, out_dir: Path, *, seed: int = 0, batch_size: int = 8,
                       progress: bool = True) -> Path:
    """Generate every output above for ``samples`` into ``out_dir`` (see module doc)."""
    from c3llm.core.progress import progress_bar

    model = pipe.model
    pipe._ready()
    out_dir = Path(out_dir)
    has_video = "video" in model.encoders
    has_audio_enc = "audio" in model.encoders
    tasks = [t for t in AUDIO_OUTPUTS if has_video or not t.startswith("v2a")]
    for t in tasks:
        (out_dir / t).mkdir(parents=True, exist_ok=True)
    captions_file = out_dir / "captions.jsonl"
    done_captions = set()
    if captions_file.is_file():
        done_captions = {json.loads(line)["id"] for line in captions_file.read_text().splitlines() if line.strip()}
    if not has_audio_enc:
        done_captions = {s.id for s in samples}
    todo = [s for s in samples if not _done(out_dir, s.id, done_captions, tasks)]
    log.info("generate %s: %d clips (%d already done)", out_dir.name, len(todo), len(samples) - len(todo))
    sampling = pipe.generate_defaults.sampling
    bar = progress_bar(len(todo), f"generate {out_dir.name}", unit="clip", enabled=progress)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        g = torch.Generator(device=model.device).manual_seed(seed + start)
        refs = [load_audio(s.audio_path) for s in batch]
        durations = [r.duration for r in refs]
        frames = [model.decoder.frames_for(d) for d in durations]
        captions = [s.captions[0] for s in batch]
        uncond = [model.sequences.unconditional_audio() for _ in batch]
        guided = uncond if sampling.guidance_scale != 1.0 else None
        # text -> audio
        prompts = [model.sequences.text_to_audio(c) for c in captions]
        codes = generate_acoustic(model, prompts, num_frames=frames, sampling=sampling, generator=g, unconditional=guided)
        none = [None] * len(batch)
        for name, refine in (("t2a", True), ("t2a_no_nar", False)):
            for s, a in zip(batch, codes_to_audio(model, codes, captions=captions, video=none, durations=durations,
                                                  refine=refine)):
                _save(a, out_dir / name / f"{s.id}.wav")
        # video -> audio (+ the pooled-feature ablation)
        if has_video:
            feats = model.encode_media("video", [load_video(s.video_path) for s in batch])
            pooled = [f.mean(0, keepdim=True).expand_as(f).clone() for f in feats]
            for variant, video in (("v2a", feats), ("v2a_pooled", pooled)):
                prompts = [model.sequences.video_to_audio(f) for f in video]
                codes = generate_acoustic(model, prompts, num_frames=frames, sampling=sampling, generator=g,
                                          unconditional=guided)
                runs = (("v2a", True), ("v2a_no_nar", False)) if variant == "v2a" else (("v2a_pooled", True),)
                for name, refine in runs:
                    for s, a in zip(batch, codes_to_audio(model, codes, captions=none, video=video,
                                                          durations=durations, refine=refine)):
                        _save(a, out_dir / name / f"{s.id}.wav")
        # the references through the codec: the best generated audio can sound with this codec
        for s, r in zip(batch, refs):
            _save(resynthesize(model.decoder, r), out_dir / "codec" / f"{s.id}.wav")
        # audio -> text
        if has_audio_enc:
            feats = model.encode_media("audio", refs)
            ids = generate_text(model, [model.sequences.audio_to_text(f) for f in feats],
                                pipe.generate_defaults.text, generator=g)
            with captions_file.open("a", encoding="utf-8") as fh:
                for s, i in zip(batch, ids):
                    if s.id not in done_captions:
                        fh.write(json.dumps({"id": s.id, "caption": model.backbone.detokenize(i),
                                             "references": list(s.captions)}) + "\n")
        bar.update(len(batch))
        log.info("generate %s: %d/%d clips", out_dir.name, start + len(batch), len(todo))
    bar.close()
    return out_dir
