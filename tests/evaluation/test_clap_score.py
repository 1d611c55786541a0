"""The CLAP score in the evaluate stage: a tiny CLAP trained on the world's training clips and
saved as the pretrain stage saves it scores T2A outputs against the captions they were made
from, under a name that says which CLAP it is; without ``[evaluate] clap_checkpoint`` it is
absent, with the reason."""

from __future__ import annotations

import json
import re
import shutil

import attrs
import pytest

from c3llm.app.evaluation.networks import setup_clap_scoring
from c3llm.app.evaluation.runner import evaluate_run
from c3llm.app.pretrain.cache import MARKER
from c3llm.app.pretrain.clap import save_clap, train_clap
from c3llm.app.pretrain.clap_score import ClapScorer
from c3llm.app.pretrain.settings import ClapPretrainConfig
from c3llm.app.run_config import RunConfig, parse_run_config
from c3llm.app.stages import RunContext
from c3llm.app.training.loop import OptimConfig
from c3llm.core.errors import UnavailableError
from c3llm.core.media import load_audio
from c3llm.core.registry import get_registry
from c3llm.plugins.datasets.synthetic import WorldConfig, generate_world

SOURCES = ("beep", "knock", "hiss")
T2A_SYSTEMS = ("c3llm", "c3llm_no_nar", "chance", "chance_codec", "retrieval", "retrieval_codec", "codec", "reference")


def _config(root, world, clap):
    evaluate = {"reference_classifier": {"epochs": 5, "batch_size": 8}, "num_examples": 0,
                "metrics": {"synth_audio": {"pitch_fmin": 100.0}}}
    if clap is not None:
        evaluate["clap_checkpoint"] = str(clap)
    return parse_run_config({
        "run": {"name": "fake", "out_dir": str(root / "runs"), "seed": 1},
        "decoder": {"name": "encodec"}, "backbone": {"name": "gemma"},  # no encoders: T2A only
        "data": {"train": {"name": "synthetic", "root": str(world), "split": "train"},
                 "eval": {"test": {"name": "synthetic", "root": str(world), "split": "test"}}},
        "evaluate": evaluate})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("clap_eval")
    world = root / "world"
    generate_world(WorldConfig(num_train=36, num_test=8, num_test_novel=0, duration=1.0, max_events=2,
                               sources=SOURCES, novel_combinations=()), world, progress=False)
    ctx = RunContext(_config(root, world, root / "foundation" / "clap"), get_registry(), progress=False)
    train = ctx.train_samples()
    clips = [load_audio(s.audio_path) for s in train]
    config = ClapPretrainConfig(text_hidden=32, text_vocab_size=200, max_tokens=32,
                                train=OptimConfig(steps=10, batch_size=12, lr=2e-3, warmup_steps=2, log_every=10,
                                                  tensorboard=False))
    encoder, model, tokenizer, _ = train_clap(ctx.registry, config, clips, [list(s.captions[:3]) for s in train],
                                              root / "work", progress=False)
    folder = root / "foundation" / "clap"
    save_clap(encoder, model, tokenizer, folder)
    # the marker the pretrain stage writes beside its models (with pretrain_clap's report)
    (folder / MARKER).write_text(json.dumps({"kind": "clap", "report": {"held_out": {
        "clips": 8, "top1": 0.5, "top5": 1.0, "chance_top1": 0.125, "matched_score": 0.4, "unmatched_score": 0.1}}}))
    # T2A "outputs": the reference itself (matches its prompt) and a clip of another source (does not)
    samples = ctx.eval_samples()["test"]
    gen = ctx.directory / "generated" / "test"
    for k, s in enumerate(samples):
        ref = load_audio(s.audio_path)
        other = next(o for o in samples[k + 1:] + samples[:k] if o.label != s.label)
        for folder_name, audio in (("t2a", ref), ("t2a_no_nar", load_audio(other.audio_path)), ("codec", ref)):
            audio.save(gen / folder_name / f"{s.id}.wav")
    results = evaluate_run(ctx)
    return ctx, results, folder


def _t2a(results):
    return results["splits"]["test"]["tasks"]["t2a"]


def test_t2a_systems_get_the_in_project_clap_score(run):
    ctx, results, folder = run
    assert results["clap_score"]["available"] and results["clap_score"]["metric"] == "clap_score_inproject"
    assert results["clap_score"]["path"] == str(folder)
    systems = _t2a(results)["systems"]
    for key in T2A_SYSTEMS:
        value = systems[key]["metrics"]["clap_score_inproject"]
        assert -1.0 <= value <= 1.0, key
    # the same audio and prompts: the model row (the reference itself) equals the ceiling row
    assert systems["c3llm"]["metrics"]["clap_score_inproject"] == pytest.approx(
        systems["reference"]["metrics"]["clap_score_inproject"])
    samples = ctx.eval_samples()["test"]
    direct = ClapScorer(folder).score([load_audio(s.audio_path) for s in samples], [s.captions[0] for s in samples])
    assert systems["c3llm"]["metrics"]["clap_score_inproject"] == pytest.approx(float(direct.mean()), abs=1e-5)
    assert "clap_score" not in results["unavailable"]
    assert not any(k.startswith("clap_score") for s in results["splits"]["test"]["tasks"].values()
                   for sy in s["systems"].values() for k in sy["metrics"] if s is not _t2a(results))


def test_each_output_is_scored_against_its_own_prompt(run):
    """The w/o-NAR row holds, for each clip, a clip of another source: its score is that audio
    against this clip's prompt. (Whether matched pairs score higher is the CLAP's quality, not the
    evaluation's: a CLAP this small, trained for seconds, does not tell them apart.)"""
    ctx, results, folder = run
    samples = ctx.eval_samples()["test"]
    gen = ctx.directory / "generated" / "test"
    scorer = ClapScorer(folder)
    pairs = scorer.score([load_audio(gen / "t2a_no_nar" / f"{s.id}.wav") for s in samples],
                         [s.captions[0] for s in samples])
    metrics = _t2a(results)["systems"]["c3llm_no_nar"]["metrics"]
    assert metrics["clap_score_inproject"] == pytest.approx(float(pairs.mean()), abs=1e-5)
    assert metrics["clap_score_inproject_std"] == pytest.approx(float(pairs.double().std(unbiased=False)), abs=1e-5)


def test_clap_score_is_kept_out_of_the_paper_table_and_the_verdict(run):
    ctx, results, _ = run
    assert not any(r["metric"].startswith("clap_score") for r in results["splits"]["test"]["verdict"]["t2a"]["metrics"])
    assert "clap_score_inproject" in results["splits"]["test"]["ablations"]["nar"]["t2a"]
    md = (ctx.directory / "eval" / "report.md").read_text()
    main = md.split("### Main table (cf. the paper's Table 1)")[1].split("###")[0]
    extra = md.split("### Ground-truth metrics (synthetic world) and more")[1].split("###")[0]
    assert "clap_score" not in main and "clap_score_inproject ↑" in extra
    assert re.search(r"`clap_score_inproject` \(T2A.*in-project \(pretrain stage\) CLAP.*not LAION CLAP", md)
    assert "top-1 0.500 (chance 0.125)" in md
    assert "clap_score_inproject" in (ctx.directory / "eval" / "report.html").read_text()


def test_without_a_clap_checkpoint_the_score_is_absent_with_the_reason(run, tmp_path):
    ctx, _, _ = run
    sections = {**ctx.config.sections, "evaluate": attrs.evolve(ctx.config.evaluate, clap_checkpoint=None)}
    plain = RunContext(RunConfig(ctx.config.components, sections, ctx.config.base_dir), ctx.registry, progress=False)
    plain.directory = tmp_path / "run"
    for part in ("generated", "eval/reference_classifier"):
        shutil.copytree(ctx.directory / part, plain.directory / part)
    results = evaluate_run(plain)
    assert not results["clap_score"]["available"]
    assert "clap_checkpoint" in results["unavailable"]["clap_score"]
    assert "clap_checkpoint" in _t2a(results)["unavailable"]["clap_score"]
    assert not any(k.startswith("clap_score") for t in results["splits"]["test"]["tasks"].values()
                   for sy in t["systems"].values() for k in sy["metrics"])


def test_other_clap_directories_are_named_external_and_a_missing_one_is_an_error(run, tmp_path):
    ctx, _, folder = run
    copy = tmp_path / "some_clap"
    shutil.copytree(folder, copy)
    (copy / MARKER).unlink()
    scoring, info = setup_clap_scoring(attrs.evolve(ctx.config.evaluate, clap_checkpoint=str(copy)))
    assert scoring is not None and info["metric"] == "clap_score_external" and info["kind"] == "external"
    with pytest.raises(UnavailableError, match="no CLAP model"):
        setup_clap_scoring(attrs.evolve(ctx.config.evaluate, clap_checkpoint=str(tmp_path / "none")))
