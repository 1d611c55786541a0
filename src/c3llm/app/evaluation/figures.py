"""The report's figures: training curves, spectrograms, and the example clips they show."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from c3llm.app.evaluation.generate import CAPTIONS_FILE, read_captions
from c3llm.core.media import load_audio
from c3llm.core.paths import file_stem

log = logging.getLogger(__name__)


#: Generated folders shown beside the reference in spectrograms and samples.
EXAMPLE_AUDIO = (("t2a", "T2A C3LLM"), ("t2a_no_nar", "T2A w/o NAR"), ("v2a", "V2A C3LLM"),
                 ("v2a_no_nar", "V2A w/o NAR"), ("v2a_pooled", "V2A pooled video"))


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("report: skipping a malformed line of %s", path)
    return rows


def plot_curve(records: Sequence[dict[str, Any]], keys: Sequence[str], title: str, path: Path) -> Path | None:
    """Each of ``keys`` against ``step`` (log scale when every value is positive)."""
    series = {k: [(r["step"], r[k]) for r in records if isinstance(r.get(k), int | float) and "step" in r]
              for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot()
    for key, points in series.items():
        steps, values = zip(*points)
        ax.plot(steps, values, label=key, linewidth=1.6 if key == "loss" else 1.0)
    if all(v > 0 for points in series.values() for _, v in points):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.15, top=0.9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def plot_training_curves(run_dir: Path, fig_dir: Path) -> list[dict[str, str]]:
    """PNG loss curves of the LM stage, the NAR stage and the codec, for those that exist."""
    made = []
    for stage, title in (("lm", "LM stage (eq. 1)"), ("nar", "NAR stage (eq. 2)")):
        path = run_dir / "train" / stage / "metrics.jsonl"
        if path.is_file():
            records = read_jsonl(path)
            keys = sorted({k for r in records for k in r if k == "loss" or k.startswith("loss_")})
            out = plot_curve(records, keys, f"{title}: {path.relative_to(run_dir)}", fig_dir / f"loss_{stage}.png")
            if out:
                made.append({"title": title, "path": str(out.relative_to(fig_dir.parent))})
    codec = run_dir / "codec" / "report.json"
    if codec.is_file():
        curve = json.loads(codec.read_text(encoding="utf-8")).get("curve") or []
        keys = sorted({k for r in curve for k in r if k != "step"})
        out = plot_curve(curve, keys, "codec training: codec/report.json", fig_dir / "loss_codec.png")
        if out:
            made.append({"title": "Codec training", "path": str(out.relative_to(fig_dir.parent))})
    return made


def plot_spectrograms(clips: Sequence[tuple[str, Path]], title: str, path: Path, *, sample_rate: int = 16000) -> Path:
    """Log-mel spectrograms side by side, on one colour scale (80 dB range)."""
    import torch

    from c3llm.scoring.embedders import LogMel

    mel = LogMel(sample_rate=sample_rate, n_fft=512, hop_length=128, n_mels=64, fmin=0.0, fmax=sample_rate / 2)
    specs = []
    with torch.no_grad():
        for name, wav_path in clips:
            audio = load_audio(wav_path).to(sample_rate, channels=1)
            specs.append((name, mel(audio.waveform)[0].numpy(), audio.duration))  # (frames, n_mels)
    top = max(float(s.max()) for _, s, _ in specs)
    fig = _figure(2.6 * len(specs), 2.6)
    axes = fig.subplots(1, len(specs), squeeze=False)[0]
    for ax, (name, spec, duration) in zip(axes, specs):
        image = ax.imshow(spec.T, origin="lower", aspect="auto", extent=(0, duration, 0, spec.shape[1]),
                          vmin=top - 80, vmax=top, cmap="magma")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("s")
    axes[0].set_ylabel("mel band")
    fig.subplots_adjust(left=0.06, right=0.9, bottom=0.18, top=0.8, wspace=0.25)
    fig.colorbar(image, cax=fig.add_axes((0.915, 0.18, 0.012, 0.62)), label="dB")
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def collect_examples(run_dir: Path, splits: dict[str, list], count: int) -> dict[str, list[dict[str, Any]]]:
    """The first ``count`` clips of each split: reference and generated WAV paths, captions."""
    examples: dict[str, list[dict[str, Any]]] = {}
    for label, samples in splits.items():
        gen_dir = run_dir / "generated" / label
        captions = read_captions(gen_dir / CAPTIONS_FILE)
        chosen = []
        for s in samples[:count]:
            audio = [("reference", "Reference", Path(s.audio_path))]
            audio += [(folder, name, gen_dir / folder / f"{file_stem(s.id)}.wav") for folder, name in EXAMPLE_AUDIO
                      if (gen_dir / folder / f"{file_stem(s.id)}.wav").is_file()]
            chosen.append({"id": s.id, "prompt": s.captions[0] if s.captions else None,
                           "caption": captions.get(s.id, {}).get("caption"), "references": list(s.captions),
                           "audio": audio})
        examples[label] = chosen
    return examples


def materialise_examples(examples: dict[str, list[dict[str, Any]]], eval_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Copy the example WAVs into ``eval/samples/`` and draw their spectrograms; paths become
    relative to ``eval/``."""
    shown: dict[str, list[dict[str, Any]]] = {}
    for label, clips in examples.items():
        shown[label] = []
        for clip in clips:
            copies = []
            for key, name, src in clip["audio"]:
                dst = eval_dir / "samples" / label / file_stem(clip["id"]) / f"{key}.wav"
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                copies.append({"name": name, "path": str(dst.relative_to(eval_dir))})
            figure = plot_spectrograms([(name, src) for _, name, src in clip["audio"]], f"{label} / {clip['id']}",
                                       eval_dir / "figures" / f"mel_{label}_{file_stem(clip['id'])}.png")
            shown[label].append({**{k: v for k, v in clip.items() if k != "audio"}, "audio": copies,
                                 "spectrogram": str(figure.relative_to(eval_dir))})
    return shown
