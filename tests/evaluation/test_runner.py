"""The evaluate stage on a fake run folder: a tiny synthetic world whose "generated" audio is
known to be perfect (the reference itself), broken (noise) or mistimed, and captions known to
be right or wrong, so that the ordering of the scores is certain."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch

from c3llm.app.evaluation.networks import setup_networks, setup_reference_classifier
from c3llm.app.evaluation.runner import evaluate_run, missing_outputs
from c3llm.app.evaluation.scorer import Scorer
from c3llm.app.run_config import parse_run_config
from c3llm.app.stages import RunContext
from c3llm.core.errors import ConfigError, InputError
from c3llm.core.media import Audio, load_audio
from c3llm.core.registry import get_registry
from c3llm.plugins.datasets.synthetic import WorldConfig, generate_world

SOURCES = ("beep", "knock", "hiss")
NUM_TEST = 9
NUM_WRONG = 3  # captions of another source for the last clips of each split


def _noise_like(audio: Audio, seed: int) -> Audio:
    g = torch.Generator().manual_seed(seed)
    return Audio(0.3 * torch.randn(audio.waveform.shape, generator=g), audio.sample_rate)


def _rolled(audio: Audio) -> Audio:
    """The reference moved by 0.37 s (circularly): the right sound at the wrong times."""
    return Audio(torch.roll(audio.waveform, round(0.37 * audio.sample_rate), dims=1), audio.sample_rate)


def _config(root, world):
    data = {
        "run": {"name": "fake", "out_dir": str(root / "runs"), "seed": 3},
        "decoder": {"name": "encodec"}, "backbone": {"name": "gemma"},
        "audio_encoder": {"name": "logmel"}, "video_encoder": {"name": "rgb-flow"},
        "data": {"train": {"name": "synthetic", "root": str(world), "split": "train"},
                 "eval": {"test": {"name": "synthetic", "root": str(world), "split": "test"},
                          "test_novel": {"name": "synthetic", "root": str(world), "split": "test_novel"}}},
        # pitch search from 100 Hz (the lowest pitch of these sources is ~113 Hz) keeps YIN cheap
        "evaluate": {"reference_classifier": {"epochs": 20, "batch_size": 8}, "num_examples": 2,
                     "metrics": {"synth_audio": {"pitch_fmin": 100.0}}},
    }
    return parse_run_config(data)


def _fake_generation(ctx: RunContext) -> None:
    """generated/{split}/ as generate_for_split lays it out, with known-quality contents."""
    train = ctx.train_samples()
    for label, samples in ctx.eval_samples().items():
        out = ctx.directory / "generated" / label
        lines = []
        for k, s in enumerate(samples):
            ref = load_audio(s.audio_path)
            for folder, audio in (("t2a", ref), ("t2a_no_nar", _noise_like(ref, k)), ("v2a", ref),
                                  ("v2a_no_nar", _noise_like(ref, 100 + k)), ("v2a_pooled", _rolled(ref)),
                                  ("codec", ref)):
                audio.save(out / folder / f"{s.id}.wav")
            if k < len(samples) - NUM_WRONG:
                caption = s.captions[1]
            else:  # a caption of a clip with another source
                caption = next(o.captions[1] for o in train if o.label != s.label)
            lines.append(json.dumps({"id": s.id, "caption": caption, "references": list(s.captions)}))
        (out / "captions.jsonl").write_text("\n".join(lines) + "\n")
    for stage in ("lm", "nar"):
        folder = ctx.directory / "train" / stage
        folder.mkdir(parents=True)
        records = [{"step": s, "loss": 5.0 / s, "loss_t2a": 6.0 / s, "loss_a2t": 4.0 / s} for s in range(1, 30, 4)]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    world = root / "world"
    generate_world(WorldConfig(num_train=30, num_test=NUM_TEST, num_test_novel=6, duration=1.0, max_events=3,
                               sources=SOURCES, novel_combinations=(("beep", "high"),)), world, progress=False)
    ctx = RunContext(_config(root, world), get_registry(), progress=False)
    _fake_generation(ctx)
    torch.manual_seed(0)
    results = evaluate_run(ctx)
    return ctx, results


def _metrics(results, split, task, system):
    return results["splits"][split]["tasks"][task]["systems"][system]["metrics"]


def test_results_json_structure(evaluated):
    ctx, results = evaluated
    on_disk = json.loads((ctx.directory / "eval" / "results.json").read_text())
    assert on_disk["splits"].keys() == {"test", "test_novel"}
    for split in on_disk["splits"].values():
        assert set(split["tasks"]) == {"t2a", "v2a", "a2t"}
        assert list(split["tasks"]["t2a"]["systems"]) == ["c3llm", "c3llm_no_nar", "chance", "chance_codec", "retrieval",
                                                         "retrieval_codec", "codec", "reference"]
        assert list(split["tasks"]["v2a"]["systems"]) == ["c3llm", "c3llm_no_nar", "c3llm_pooled", "chance",
                                                         "chance_codec", "codec", "reference"]
        assert split["tasks"]["v2a"]["systems"]["codec"]["kind"] == "ceiling"
        assert set(split["tasks"]["a2t"]["systems"]) == {"c3llm", "chance", "retrieval", "reference"}
    t2a = _metrics(on_disk, "test", "t2a", "c3llm")
    assert {"fd_synth", "kl_synth", "isc_synth", "isc_synth_std", "source_acc", "onset_f1", "pitch_acc",
            "event_count_acc"} <= set(t2a)
    assert {"fd_synth", "mkl_synth", "isc_synth", "onset_acc", "onset_ap"} <= set(_metrics(on_disk, "test", "v2a", "c3llm"))
    assert {"cider_d", "caption_source_acc", "caption_attribute_acc"} <= set(_metrics(on_disk, "test", "a2t", "c3llm"))
    # the ceiling never scores a clip against itself
    assert "fd_synth" not in _metrics(on_disk, "test", "t2a", "reference")
    assert "isc_synth" in _metrics(on_disk, "test", "t2a", "reference")
    # paper-named networks and SPICE are reported as unavailable, with the fix
    for name in ("fad", "fd", "kl", "mkl", "isc", "spice", "spider"):
        assert name in on_disk["unavailable"]
    assert "panns_checkpoint" in on_disk["unavailable"]["kl"]
    assert "spice_jar" in on_disk["unavailable"]["spice"]
    assert not any(k in ("fad", "fd", "kl", "isc", "spice") for s in on_disk["splits"].values()
                   for t in s["tasks"].values() for sy in t["systems"].values() for k in sy["metrics"])
    classifier = on_disk["reference_classifier"]
    assert classifier["available"] and classifier["accuracy_split"] == "test"
    assert classifier["accuracy"] >= 0.75
    assert set(classifier["labels"]) == set(SOURCES)


def test_scores_order_as_the_outputs_deserve(evaluated):
    _, results = evaluated
    good, noise = _metrics(results, "test", "t2a", "c3llm"), _metrics(results, "test", "t2a", "c3llm_no_nar")
    assert good["source_acc"] >= 0.75 and good["source_acc"] > noise["source_acc"]
    assert good["fd_synth"] < noise["fd_synth"]
    assert good["kl_synth"] < 1e-9 < noise["kl_synth"]
    assert good["onset_f1"] > noise["onset_f1"]
    assert results["splits"]["test"]["isc_splits"] == NUM_TEST // 2  # two clips per split at least
    assert good["isc_synth"] > noise["isc_synth"]  # confident and varied vs one class for all
    v2a = results["splits"]["test"]["tasks"]["v2a"]["systems"]
    assert v2a["c3llm"]["metrics"]["onset_ap"] > v2a["c3llm_pooled"]["metrics"]["onset_ap"]
    assert v2a["c3llm"]["metrics"]["onset_f1"] > v2a["c3llm_pooled"]["metrics"]["onset_f1"]
    assert v2a["c3llm"]["metrics"]["onset_acc"] == 1.0
    # the "generated" audio is the reference: same analytic scores as the ceiling row
    ceiling = _metrics(results, "test", "t2a", "reference")
    assert good["onset_f1"] == pytest.approx(ceiling["onset_f1"])
    a2t = results["splits"]["test"]["tasks"]["a2t"]["systems"]
    assert a2t["c3llm"]["metrics"]["caption_source_acc"] == pytest.approx((NUM_TEST - NUM_WRONG) / NUM_TEST)
    assert a2t["c3llm"]["metrics"]["cider_d"] > a2t["chance"]["metrics"]["cider_d"]
    assert a2t["reference"]["metrics"]["caption_source_acc"] == 1.0


def test_baselines_use_training_clips(evaluated):
    _, results = evaluated
    t2a = results["splits"]["test"]["tasks"]["t2a"]["systems"]
    for key in ("chance", "retrieval"):
        assert t2a[key]["kind"] == "baseline" and t2a[key]["source"] == "training split"
    assert set(t2a["retrieval"]["metrics"]) == set(t2a["c3llm"]["metrics"])
    # the nearest training clip by reference-classifier embedding is of the same source
    a2t = results["splits"]["test"]["tasks"]["a2t"]["systems"]
    assert a2t["retrieval"]["metrics"]["caption_source_acc"] > a2t["chance"]["metrics"]["caption_source_acc"]


def test_audio_baselines_are_also_scored_through_the_codec(evaluated):
    _, results = evaluated
    for task in ("t2a", "v2a"):
        systems = results["splits"]["test"]["tasks"][task]["systems"]
        raw, coded = systems["chance"], systems["chance_codec"]
        assert coded["kind"] == "baseline" and coded["label"] == raw["label"] + ", through the codec"
        assert set(coded["metrics"]) == set(raw["metrics"])
        # an untrained codec garbles the clips: its copies score differently from the originals
        assert coded["metrics"]["fd_synth"] != pytest.approx(raw["metrics"]["fd_synth"])


def test_a_codec_that_cannot_load_leaves_the_raw_baselines(evaluated, tmp_path, monkeypatch):
    from c3llm.core.errors import UnavailableError

    shared, _ = evaluated
    ctx = RunContext(_config(tmp_path, shared.directory.parents[1] / "world"), get_registry(), progress=False)
    for part in ("generated", "train", "eval/reference_classifier"):  # a copy: the shared run stays as it is
        shutil.copytree(shared.directory / part, ctx.directory / part)

    def offline():
        raise UnavailableError("codec weights are on the hub and this machine is offline")

    monkeypatch.setattr(ctx, "codec", offline)
    results = evaluate_run(ctx)
    assert "offline" in results["unavailable"]["baselines through the codec"]
    systems = results["splits"]["test"]["tasks"]["t2a"]["systems"]
    assert "chance" in systems and "retrieval" in systems
    assert "chance_codec" not in systems and "retrieval_codec" not in systems


def test_verdict_weighs_the_model_against_its_strongest_baseline(evaluated):
    _, results = evaluated
    verdict = results["splits"]["test"]["verdict"]
    assert set(verdict) == {"t2a", "v2a", "a2t"}
    t2a = {r["metric"]: r for r in verdict["t2a"]["metrics"]}
    assert set(t2a) == {"kl_synth", "source_acc", "pitch_acc", "event_count_acc"}  # FD/ISc are not judged
    # the fake model's T2A audio is the reference itself: KL 0 beats every baseline
    assert t2a["kl_synth"]["ahead"] and t2a["kl_synth"]["model"] < t2a["kl_synth"]["baseline_value"]
    systems = results["splits"]["test"]["tasks"]["t2a"]["systems"]
    best = max(v["metrics"]["source_acc"] for v in systems.values() if v["kind"] == "baseline")
    assert t2a["source_acc"]["baseline_value"] == best
    assert verdict["t2a"]["ahead"] == sum(r["ahead"] for r in t2a.values()) and verdict["t2a"]["of"] == 4
    assert [r["metric"] for r in t2a.values() if r["paper"]] == ["kl_synth"] and verdict["t2a"]["paper_of"] == 1
    assert {r["metric"] for r in verdict["a2t"]["metrics"]} >= {"cider_d", "caption_source_acc"}


def test_verdict_direction_and_ties():
    from c3llm.app.evaluation.verdict import verdict

    def system(kind, **metrics):
        return {"kind": kind, "label": kind + str(sorted(metrics.items())), "metrics": metrics}

    tasks = {"t2a": {"systems": {"c3llm": system("model", kl_synth=0.5, source_acc=0.8),
                                 "chance": system("baseline", kl_synth=0.4, source_acc=0.2),
                                 "retrieval": system("baseline", kl_synth=0.9, source_acc=0.8),
                                 "reference": system("ceiling", source_acc=1.0)}}}
    rows = {r["metric"]: r for r in verdict(tasks)["t2a"]["metrics"]}
    assert rows["kl_synth"]["baseline_value"] == 0.4 and not rows["kl_synth"]["ahead"]  # lower is better
    assert rows["source_acc"]["baseline_value"] == 0.8 and not rows["source_acc"]["ahead"]  # a tie is not ahead
    assert verdict({"t2a": {"systems": {"c3llm": system("model", kl_synth=0.1)}}}) == {}  # nothing to beat


def test_ablations_are_reported(evaluated):
    _, results = evaluated
    ablations = results["splits"]["test"]["ablations"]
    assert ablations["nar"]["t2a"]["source_acc"]["delta"] > 0
    assert set(ablations["nar"]) == {"t2a", "v2a"}
    pooling = ablations["video_pooling"]["v2a"]
    assert set(pooling) == {"onset_acc", "onset_ap", "onset_f1", "event_count_acc"}
    assert pooling["onset_f1"]["per_frame"] > pooling["onset_f1"]["mean_pooled"]


def test_report_files(evaluated):
    ctx, results = evaluated
    eval_dir = ctx.directory / "eval"
    md = (eval_dir / "report.md").read_text()
    page = (eval_dir / "report.html").read_text()
    for task in ("T2A", "V2A", "A2T"):
        assert re.search(rf"^\| {task} \| C3LLM \|", md, flags=re.M), task
        assert f"<td class=l>{task}</td>" in page
    assert "C3LLM w/o NAR" in md and "mean-pooled video" in md
    assert "fd_synth ↓" in md and "Ablation: With vs without the NAR refiner" in md
    assert "| V2A | onset_f1 ↑ |" in md and "Ablation: Per-frame vs mean-pooled" in page
    assert "Verdict: C3LLM against the baselines" in md and "Verdict: C3LLM against the baselines" in page
    assert re.search(r"Summary: T2A ahead on \d of 1 of the paper's metrics, \d of 4 in all; "
                     r"V2A ahead on \d of 3 of the paper's metrics, \d of 7 in all; "
                     r"A2T ahead on \d of 1 of the paper's metrics, \d of 5 in all", md)
    assert "Chance (random training clip), through the codec" in md
    for name in ("loss_lm.png", "loss_nar.png"):
        assert (eval_dir / "figures" / name).stat().st_size > 1000
    assert len(results["report"]["spectrograms"]) == 4  # two clips in each of two splits
    for rel in results["report"]["spectrograms"] + results["report"]["samples"]:
        assert (eval_dir / rel).is_file()
        assert rel in page
    assert page.count("<audio controls") == len(results["report"]["samples"])
    assert (eval_dir / "samples" / "test" / "test_0000" / "reference.wav").is_file()


def test_reference_classifier_is_reused(evaluated, caplog):
    ctx, results = evaluated
    folder = ctx.directory / "eval" / "reference_classifier"
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    splits = ctx.eval_samples()
    references = {label: [load_audio(s.audio_path) for s in samples] for label, samples in splits.items()}
    with caplog.at_level(logging.INFO, logger="c3llm.app.evaluation"):
        classifier, info = setup_reference_classifier(ctx.config.evaluate, ctx.train_samples(), splits, references,
                                                      folder)
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert "reusing the reference classifier" in caplog.text
    assert info["accuracy_per_split"] == results["reference_classifier"]["accuracy_per_split"]
    assert info["training"] == results["reference_classifier"]["training"]


def test_reference_data_trains_the_judge_and_a_stale_judge_is_retrained(evaluated, tmp_path, caplog):
    """[data] reference (here a world with every (source, pitch) pair, as the demo's judge has)
    is what the reference classifier learns from; one trained on other data is not reused."""
    ctx, _ = evaluated
    judge_world = tmp_path / "judge_world"
    generate_world(WorldConfig(seed=7, num_train=9, num_test=0, num_test_novel=0, duration=1.0, max_events=2,
                               sources=SOURCES, novel_combinations=()), judge_world, progress=False)
    data = ctx.config.to_mapping()
    data["data"]["reference"] = {"name": "synthetic", "root": str(judge_world), "split": "train"}
    judged = RunContext(parse_run_config(data), get_registry(), progress=False)
    reference = judged.reference_samples()
    assert len(reference) == 9 and {s.label for s in reference} == set(SOURCES)
    assert all(Path(s.audio_path).is_relative_to(judge_world) for s in reference)
    assert len(ctx.reference_samples()) == len(ctx.train_samples())  # default: the training data
    folder = tmp_path / "rc"
    shutil.copytree(ctx.directory / "eval" / "reference_classifier", folder)
    splits = {"test": ctx.eval_samples()["test"][:3]}
    references = {"test": [load_audio(s.audio_path) for s in splits["test"]]}
    with caplog.at_level(logging.INFO, logger="c3llm.app.evaluation"):
        _, info = setup_reference_classifier(ctx.config.evaluate, reference, splits, references, folder)
    assert "trained on other data or settings; retraining" in caplog.text
    assert info["training"]["clips"] == 9
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="c3llm.app.evaluation"):
        setup_reference_classifier(ctx.config.evaluate, reference, splits, references, folder)
    assert "reusing the reference classifier" in caplog.text


def test_unlabelled_training_data_gives_no_synth_scores(evaluated, tmp_path):
    ctx, _ = evaluated
    unlabelled = [attrs.evolve(s, label=None) for s in ctx.train_samples()[:4]]
    classifier, info = setup_reference_classifier(ctx.config.evaluate, unlabelled, {}, {}, tmp_path / "rc")
    assert classifier is None and not info["available"] and "no class labels" in info["reason"]
    networks, unavailable = setup_networks(ctx.config.evaluate, None)
    assert networks == []
    assert {"fd_synth", "kl_synth", "mkl_synth", "isc_synth", "fd", "kl", "mkl", "isc", "fad"} <= set(unavailable)
    assert "vggish_checkpoint" in unavailable["fad"]


def test_unknown_metric_override_is_a_config_error(evaluated):
    ctx, _ = evaluated
    settings = attrs.evolve(ctx.config.evaluate, metrics={"synth_audoi": {}})
    with pytest.raises(ConfigError, match="Did you mean 'synth_audio'"):
        Scorer(ctx.registry, [], settings, None)


def test_incomplete_generation_is_detected_and_needs_a_trained_pipeline(evaluated, tmp_path):
    ctx, _ = evaluated
    samples = ctx.eval_samples()["test"]
    gen = ctx.directory / "generated" / "test"
    ids = [s.id for s in samples]
    assert missing_outputs(gen, ids, ["t2a", "v2a"], True) == []
    assert missing_outputs(tmp_path, ids, ["t2a"], True) == [f"t2a: {len(ids)} of {len(ids)} clips",
                                                            f"captions.jsonl: {len(ids)} of {len(ids)} clips"]
    # a run folder without generated outputs and without a trained pipeline: a clear error
    other = RunContext(ctx.config, ctx.registry, progress=False)
    other.directory = tmp_path / "empty_run"
    with pytest.raises(InputError, match="run the train stage first"):
        evaluate_run(other)


def test_noise_scores_are_finite_numbers(evaluated):
    _, results = evaluated
    values = [v for s in results["splits"].values() for t in s["tasks"].values() for sy in t["systems"].values()
              for v in sy["metrics"].values()]
    assert values and all(isinstance(v, float) and np.isfinite(v) for v in values)
