"""The readable side of the evaluate stage: ``eval/report.md``, ``eval/report.html`` and their
figures and samples, all rendered from the ``results.json`` dictionary.

- a table per evaluation split shaped like the paper's Table 1 (rows: task x system; columns:
  the metrics as computed, ``fd_synth`` never relabelled ``FAD``), and a second table with the
  synthetic world's ground-truth metrics; the best non-ceiling value per task in bold;
- a verdict: the model against its strongest baseline on each conditioned metric;
- the ablations as they come out: with vs without the NAR refiner, per-frame vs mean-pooled
  video features (synchronisation metrics);
- training curves (LM and NAR ``metrics.jsonl``, the codec's ``report.json``);
- log-mel spectrograms of generated vs reference audio and playable WAVs for a few clips.

Figures use matplotlib's Agg canvas directly (no pyplot, no global backend switch).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from c3llm.app.evaluation.figures import materialise_examples, plot_training_curves

log = logging.getLogger(__name__)

#: Paper-style columns, in this order when present (the names the metrics computed).
MAIN_COLUMNS = ("fad", "fd", "fd_synth", "kl", "kl_synth", "mkl", "mkl_synth", "isc", "isc_synth",
                "onset_acc", "onset_ap", "cider_d", "spice", "spider")
#: Ground-truth columns of the synthetic world, then anything else, in this order when present.
EXTRA_COLUMNS = ("source_acc", "onset_f1", "pitch_acc", "event_count_acc", "onset_detection_acc",
                 "caption_source_acc", "caption_pitch_acc", "caption_count_acc", "caption_attribute_acc")
LOWER_IS_BETTER = ("fad", "fd", "kl", "mkl")
#: Table order of the tasks, as in the paper's Table 1.
TASK_ORDER = ("v2a", "a2t", "t2a")


def lower_is_better(key: str) -> bool:
    """Distances and divergences (``fd_synth``, ``mkl``, ``fad_inf``…) are better low."""
    return key.split("_")[0] in LOWER_IS_BETTER


def arrow(key: str) -> str:
    return "↓" if lower_is_better(key) else "↑"


def format_value(metrics: dict[str, Any], key: str) -> str:
    value = metrics.get(key)
    if value is None:
        return "—"
    text = f"{value:.1f}" if abs(value) >= 100 else _number(value)
    std = metrics.get(f"{key}_std")
    return f"{text} ± {std:.2f}" if std is not None else text


def split_columns(split: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(main, extra) metric columns that hold at least one value in this split."""
    present = {k for task in split["tasks"].values() for system in task["systems"].values()
               for k in system["metrics"] if not k.endswith("_std")}
    main = [k for k in MAIN_COLUMNS if k in present]
    extra = [k for k in EXTRA_COLUMNS if k in present] + sorted(present - set(MAIN_COLUMNS) - set(EXTRA_COLUMNS))
    return main, extra


def table_rows(split: dict[str, Any], columns: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (task, system): labels, formatted cells, and which cells are best in their task."""
    rows = []
    for task_key in [t for t in TASK_ORDER if t in split["tasks"]]:
        task = split["tasks"][task_key]
        systems = task["systems"]
        best = {}
        for col in columns:
            values = [s["metrics"][col] for s in systems.values() if s["kind"] != "ceiling" and col in s["metrics"]]
            if values:
                best[col] = min(values) if lower_is_better(col) else max(values)
        for key, system in systems.items():
            cells = [format_value(system["metrics"], col) for col in columns]
            bold = [system["kind"] != "ceiling" and col in system["metrics"] and system["metrics"][col] == best.get(col)
                    for col in columns]
            rows.append({"task": task["label"], "system": system["label"], "kind": system["kind"], "cells": cells,
                         "bold": bold})
    return rows


ABLATIONS = (("nar", "With vs without the NAR refiner", ("with_nar", "with NAR"), ("without_nar", "without NAR")),
             ("video_pooling", "Per-frame vs mean-pooled video features (synchronisation)",
              ("per_frame", "per-frame"), ("mean_pooled", "mean-pooled")))


def _number(value: float, signed: bool = False) -> str:
    """Three decimals; round-off around zero (FD of identical sets is -1e-12) shows as 0."""
    value = 0.0 if abs(value) < 5e-4 else value
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def ablation_tables(split: dict[str, Any]) -> list[dict[str, Any]]:
    """Each ablation as a table: headers and rows (task, metric, both values, delta, better side)."""
    tables = []
    for study, title, (a, a_name), (b, b_name) in ABLATIONS:
        rows = []
        for task, metrics in split["ablations"].get(study, {}).items():
            for metric, v in metrics.items():
                if v[a] is None or v[b] is None:
                    continue
                better = "tie" if v[a] == v[b] else (a_name if (v[a] < v[b]) == lower_is_better(metric) else b_name)
                rows.append([task.upper(), f"{metric} {arrow(metric)}", _number(v[a]), _number(v[b]),
                             _number(v["delta"], signed=True), better])
        if rows:
            tables.append({"title": title, "headers": ["task", "metric", a_name, b_name, "delta", "better"],
                           "rows": rows})
    return tables


VERDICT_NOTE = (
    "The model against its strongest baseline on each metric that scores whether an output follows its own "
    "condition (every baseline row counts, raw or through the codec); \"paper\" marks the paper's own metrics. "
    "FD and ISc are left out: they score the set of clips, which a random real recording samples perfectly; read "
    "them against the codec ceiling. A baseline at 1.000 (e.g. retrieval naming the source) can be tied, not beaten."
)


def verdict_table(split: dict[str, Any]) -> dict[str, Any] | None:
    """The split's verdict as a table (task, metric, C3LLM, strongest baseline, its value, ahead)."""
    rows = []
    for task, judged in split.get("verdict", {}).items():
        for r in judged["metrics"]:
            if r["model"] is None or r["baseline_value"] is None:
                continue
            rows.append([task.upper(), f"{r['metric']} {arrow(r['metric'])}" + (" (paper)" if r.get("paper") else ""),
                         _number(r["model"]), r["baseline"], _number(r["baseline_value"]), "yes" if r["ahead"] else "no"])
    if not rows:
        return None
    summary = "; ".join(f"{task.upper()} ahead on {v['paper_ahead']} of {v['paper_of']} of the paper's metrics, "
                        f"{v['ahead']} of {v['of']} in all" for task, v in split["verdict"].items())
    return {"headers": ["task", "metric", "C3LLM", "strongest baseline", "its value", "C3LLM ahead"],
            "rows": rows, "summary": summary}


# ---------------------------------------------------------------------------------------
# Figures


# ---------------------------------------------------------------------------------------
# Examples


# ---------------------------------------------------------------------------------------
# Rendering

NOTES = (
    "Scores carry the name of the network that produced them: `*_synth` come from the reference classifier "
    "trained on this run's training labels (a stand-in where no PANNs/VGGish weights exist), never to be set "
    "beside the paper's FAD/KL/ISc. `fd`, `kl`, `mkl`, `isc` (PANNs CNN14) and `fad` (VGGish) appear only when "
    "their checkpoints are given. Baselines use training data only; the ceiling row scores the references "
    "themselves where that is not trivially perfect (ISc, metadata metrics; captions: one reference against "
    "the others). Bold: best non-ceiling value per task."
)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _metric_table_md(split: dict[str, Any], columns: Sequence[str]) -> str:
    rows = [[r["task"], r["system"]] + [f"**{c}**" if b else c for c, b in zip(r["cells"], r["bold"])]
            for r in table_rows(split, columns)]
    return _md_table(["task", "system"] + [f"{c} {arrow(c)}" for c in columns], rows)


def _classifier_line(info: dict[str, Any]) -> str:
    if not info.get("available"):
        return f"Reference classifier: not available ({info.get('reason')})."
    acc = info.get("accuracy")
    heldout = (info.get("training") or {}).get("heldout_accuracy")
    parts = [f"Reference classifier ({len(info['labels'])} classes): accuracy on the "
             f"`{info['accuracy_split']}` reference audio {acc:.3f}" if acc is not None else
             f"Reference classifier ({len(info['labels'])} classes): no labelled reference audio to check it on"]
    if heldout is not None:
        parts.append(f"held-out training clips {heldout:.3f}")
    others = {k: v for k, v in info.get("accuracy_per_split", {}).items() if k != info.get("accuracy_split")}
    parts += [f"`{k}` {v:.3f}" for k, v in others.items()]
    return "; ".join(parts) + "."


def clap_line(info: dict[str, Any] | None) -> str:
    """What the CLAP score column is (which CLAP, how good it is at telling captions apart), or why absent."""
    if not info or not info.get("available"):  # the reason is under "not computed"
        return ""
    line = (f"`{info['metric']}` (T2A, in the second table): mean cosine between each output and the caption it was "
            f"generated from, by the {info['kind']} CLAP in `{info['path']}`; not LAION CLAP, so never to be set beside "
            "the paper's CLAP numbers. Read it against the reference row: a CLAP that scores the reference audio no "
            "higher than chance clips does not judge T2A (it is not in the verdict).")
    held = (info.get("pretraining") or {}).get("held_out")
    if held:
        line += (f" That CLAP's held-out audio->caption retrieval among {held['clips']} clips: top-1 {held['top1']:.3f} "
                 f"(chance {held['chance_top1']:.3f}), matched cosine {held['matched_score']:.3f} vs unmatched "
                 f"{held['unmatched_score']:.3f}.")
    return line


def render_markdown(results: dict[str, Any], figures: list[dict[str, str]],
                    examples: dict[str, list[dict[str, Any]]]) -> str:
    out = [f"# Evaluation: {results['run']['name']}", "", NOTES, "", _classifier_line(results["reference_classifier"]), ""]
    if clap_line(results.get("clap_score")):
        out += [clap_line(results.get("clap_score")), ""]
    for label, split in results["splits"].items():
        main, extra = split_columns(split)
        out += [f"## Split `{label}` ({split['num_clips']} clips)", "", "### Main table (cf. the paper's Table 1)", "",
                _metric_table_md(split, main), ""]
        if extra:
            out += ["### Ground-truth metrics (synthetic world) and more", "", _metric_table_md(split, extra), ""]
        verdict = verdict_table(split)
        if verdict:
            out += ["### Verdict: C3LLM against the baselines", "", VERDICT_NOTE, "",
                    _md_table(verdict["headers"], verdict["rows"]), "", f"Summary: {verdict['summary']}.", ""]
        for ablation in ablation_tables(split):
            out += [f"### Ablation: {ablation['title']}", "", _md_table(ablation["headers"], ablation["rows"]), ""]
    out += ["## Training curves", ""]
    out += [f"![{f['title']}]({f['path']})" for f in figures] or ["No training curves found in this run folder."]
    out += ["", "## Examples", ""]
    for label, clips in examples.items():
        for clip in clips:
            out += [f"### `{label}` / `{clip['id']}`", ""]
            if clip["prompt"]:
                out.append(f"- T2A prompt: {clip['prompt']}")
            if clip["caption"] is not None:
                out.append(f"- A2T caption: {clip['caption']}")
            out.append("- References: " + " / ".join(clip["references"]))
            out.append("- Audio: " + ", ".join(f"[{a['name']}]({a['path']})" for a in clip["audio"]))
            out += ["", f"![spectrograms]({clip['spectrogram']})", ""]
    out += ["## Not computed, and why", ""]
    out += [f"- `{k}`: {v}" for k, v in results["unavailable"].items()] or ["Everything was computed."]
    return "\n".join(out) + "\n"


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right; }
th { background: #f2f2f2; } td.l { text-align: left; }
tr.baseline td { color: #555; } tr.ceiling td { color: #777; font-style: italic; }
tr.first td { border-top: 2px solid #888; }
.clip { border: 1px solid #ddd; padding: 0.6em 1em; margin: 1em 0; }
.players { display: flex; flex-wrap: wrap; gap: 1em; } .players div { font-size: 0.85em; }
img { max-width: 100%; } code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _metric_table_html(split: dict[str, Any], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(c)} {arrow(c)}</th>" for c in columns)
    body, previous = [], None
    for r in table_rows(split, columns):
        classes = [r["kind"]] + (["first"] if r["task"] != previous else [])
        previous = r["task"]
        cells = "".join(f"<td>{'<b>' + _e(c) + '</b>' if b else _e(c)}</td>" for c, b in zip(r["cells"], r["bold"]))
        body.append(f"<tr class=\"{' '.join(classes)}\"><td class=l>{_e(r['task'])}</td>"
                    f"<td class=l>{_e(r['system'])}</td>{cells}</tr>")
    return f"<table><tr><th>task</th><th>system</th>{head}</tr>{''.join(body)}</table>"


def _plain_table_html(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: Sequence[int]) -> str:
    """A table of text cells; the columns in ``left`` are left-aligned (labels), the rest numbers."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class=l>{_e(c)}</td>" if i in left else f"<td>{_e(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(results: dict[str, Any], figures: list[dict[str, str]],
                examples: dict[str, list[dict[str, Any]]]) -> str:
    notes = html.escape(NOTES).replace("`", "")
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>Evaluation: {_e(results['run']['name'])}</title>"
             f"<style>{CSS}</style></head><body>", f"<h1>Evaluation: {_e(results['run']['name'])}</h1>",
             f"<p>{notes}</p>", f"<p>{_e(_classifier_line(results['reference_classifier']).replace('`', ''))}</p>"]
    if clap_line(results.get("clap_score")):
        parts.append(f"<p>{_e(clap_line(results.get('clap_score')).replace('`', ''))}</p>")
    for label, split in results["splits"].items():
        main, extra = split_columns(split)
        parts += [f"<h2>Split <code>{_e(label)}</code> ({split['num_clips']} clips)</h2>",
                  "<h3>Main table (cf. the paper's Table 1)</h3>", _metric_table_html(split, main)]
        if extra:
            parts += ["<h3>Ground-truth metrics (synthetic world) and more</h3>", _metric_table_html(split, extra)]
        verdict = verdict_table(split)
        if verdict:
            parts += ["<h3>Verdict: C3LLM against the baselines</h3>", f"<p>{_e(VERDICT_NOTE)}</p>",
                      _plain_table_html(verdict["headers"], verdict["rows"], left=(0, 1, 3, 5)),
                      f"<p>Summary: {_e(verdict['summary'])}.</p>"]
        for ablation in ablation_tables(split):
            parts += [f"<h3>Ablation: {_e(ablation['title'])}</h3>",
                      _plain_table_html(ablation["headers"], ablation["rows"], left=(0, 1, 5))]
    parts.append("<h2>Training curves</h2>")
    parts += [f"<figure><img src=\"{_e(f['path'])}\" alt=\"{_e(f['title'])}\"></figure>" for f in figures] or [
        "<p>No training curves found in this run folder.</p>"]
    parts.append("<h2>Examples</h2>")
    for label, clips in examples.items():
        for clip in clips:
            parts.append(f"<div class=clip><h3><code>{_e(label)}</code> / <code>{_e(clip['id'])}</code></h3><ul>")
            if clip["prompt"]:
                parts.append(f"<li>T2A prompt: {_e(clip['prompt'])}</li>")
            if clip["caption"] is not None:
                parts.append(f"<li>A2T caption: <b>{_e(clip['caption'])}</b></li>")
            parts.append(f"<li>References: {_e(' / '.join(clip['references']))}</li></ul><div class=players>")
            parts += [f"<div>{_e(a['name'])}<br><audio controls preload=none src=\"{_e(a['path'])}\"></audio></div>"
                      for a in clip["audio"]]
            parts.append(f"</div><img src=\"{_e(clip['spectrogram'])}\" alt=\"spectrograms\"></div>")
    parts.append("<h2>Not computed, and why</h2><ul>")
    parts += [f"<li><code>{_e(k)}</code>: {_e(v)}</li>" for k, v in results["unavailable"].items()] or [
        "<li>Everything was computed.</li>"]
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"


def write_report(run_dir: Path, results: dict[str, Any], examples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Write ``eval/report.md``, ``eval/report.html``, figures and samples.

    :return: the files written, relative to ``eval/`` (recorded in results.json).
    """
    eval_dir = run_dir / "eval"
    figures = plot_training_curves(run_dir, eval_dir / "figures")
    shown = materialise_examples(examples, eval_dir)
    (eval_dir / "report.md").write_text(render_markdown(results, figures, shown), encoding="utf-8")
    (eval_dir / "report.html").write_text(render_html(results, figures, shown), encoding="utf-8")
    log.info("report: %d training-curve figures, %d example clips", len(figures),
             sum(len(c) for c in shown.values()))
    return {"markdown": "report.md", "html": "report.html", "figures": [f["path"] for f in figures],
            "spectrograms": [c["spectrogram"] for clips in shown.values() for c in clips],
            "samples": [a["path"] for clips in shown.values() for c in clips for a in c["audio"]]}
