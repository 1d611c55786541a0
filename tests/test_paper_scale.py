"""Paper-scale code paths on small files in the real formats: a pretrained (HF-directory)
LoRA backbone keeps what it learned through LM + NAR training, save and reload."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_configs import write_scaled_down

from c3llm import sdk
from c3llm.app.training.loop import OptimConfig, Trainer
from c3llm.app.training.tasks import (
    LMObjective,
    NARObjective,
    NARSampler,
    TaskSampler,
    TaskWeights,
    freeze_for_stage,
)

CAPTIONS = ["a dog barks", "a high beep repeats three times", "rain on a roof"]


def pretrained_lora_pipeline(directory, dtype: str = "float32") -> sdk.Pipeline:
    return sdk.Pipeline.from_plugins(
        decoder="encodec",
        backbone={"name": "gemma", "pretrained": str(directory), "mode": "lora", "lora_r": 4, "dtype": dtype},
        refiner={"name": "nar", "dim": 32, "num_layers": 1, "num_heads": 2},
    )


def random_items(pipe: sdk.Pipeline, frames: int = 6) -> list[dict]:
    decoder = pipe.model.decoder
    g = torch.Generator().manual_seed(0)
    return [{"id": str(i), "captions": (c,),
             "codes": torch.randint(decoder.cardinality, (decoder.num_codebooks, frames), generator=g)}
            for i, c in enumerate(CAPTIONS)]


def adapted(backbone) -> dict[str, torch.Tensor]:
    """The LoRA factors and the new token rows, by name."""
    return {n: p.detach().clone() for n, p in backbone.named_parameters()
            if "lora_" in n or "trainable_tokens" in n}


def test_pretrained_lora_backbone_keeps_its_training_through_nar_save_and_reload(tmp_path):
    """The NAR stage freezes the backbone before the pipeline is saved; the checkpoint must
    still hold the LoRA and new-row weights the LM stage trained (it used to hold nothing)."""
    directory = write_scaled_down("gemma", tmp_path / "gemma")
    pipe = pretrained_lora_pipeline(directory)
    model = pipe.model
    items = random_items(pipe)
    before = adapted(model.backbone)
    assert any("lora_" in n for n in before) and any("trainable_tokens" in n for n in before)
    weights = TaskWeights(t2a=1.0, v2a=0.0, a2t=0.0)
    optim = OptimConfig(steps=3, lr=5e-2, warmup_steps=0, checkpoint_every=100, tensorboard=False)
    freeze_for_stage(model, "lm")  # the calls stage_train makes, in its order
    Trainer(LMObjective(model), TaskSampler(items, model.sequences, weights, 3), optim, tmp_path / "lm",
            name="lm", progress=False).run()
    freeze_for_stage(model, "nar")
    Trainer(NARObjective(model), NARSampler(items, weights, 3), optim, tmp_path / "nar",
            name="nar", progress=False).run()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    trained = adapted(model.backbone)
    assert any(not torch.equal(trained[n], before[n]) for n in trained if "lora_B" in n)
    assert any(not torch.equal(trained[n], before[n]) for n in trained if "trainable_tokens" in n)

    saved = pipe.save_pretrained(tmp_path / "pipeline")
    reloaded = adapted(sdk.Pipeline.from_pretrained(saved).model.backbone)
    assert reloaded.keys() == trained.keys()
    for name, value in trained.items():
        assert torch.equal(reloaded[name], value), name


def test_new_token_rows_start_near_the_mean_row_and_keep_the_head_tied(tmp_path):
    """The vocabulary growth that replaced transformers' covariance-sampling resize (32-65 s at
    Gemma-2B dims): old rows unchanged, new rows the old rows' mean (+ 3e-5 std of noise), a tied head still tied,
    an untied head grown the same way."""
    from transformers import AutoModelForCausalLM

    from c3llm.plugins.backbones.vocabulary import grow_token_rows

    for kind in ("gemma", "llama"):
        directory = write_scaled_down(kind, tmp_path / kind)
        hf = AutoModelForCausalLM.from_pretrained(directory)
        old_rows = hf.get_input_embeddings().weight.detach().clone()
        old_head = hf.get_output_embeddings().weight.detach().clone()
        tied = hf.get_output_embeddings().weight is hf.get_input_embeddings().weight
        assert tied == (kind == "gemma")
        grow_token_rows(hf, old_rows.shape[0] + 5)
        emb, head = hf.get_input_embeddings(), hf.get_output_embeddings()
        assert emb.weight.shape[0] == head.weight.shape[0] == hf.config.vocab_size == old_rows.shape[0] + 5
        assert (head.weight is emb.weight) == tied
        torch.testing.assert_close(emb.weight[: len(old_rows)], old_rows, rtol=0, atol=0)
        new_rows = emb.weight[len(old_rows):]
        torch.testing.assert_close(new_rows, old_rows.mean(0).expand(5, -1), rtol=0, atol=1e-3 * old_rows.std())
        torch.testing.assert_close(head.weight[len(old_head):], old_head.mean(0).expand(5, -1), rtol=0,
                                   atol=1e-3 * old_head.std())
        assert len({tuple(r.tolist()) for r in new_rows}) == 5  # tiny noise: no exact ties between new tokens
        ids = torch.tensor([[1, len(old_rows) + 2]])
        assert hf(input_ids=ids).logits.shape == (1, 2, len(old_rows) + 5)


def test_a_bf16_backbone_trains_and_generates_from_fp32_features(tmp_path):
    """One dtype rule: projected features take the backbone's embedding dtype (bf16 here, on a
    CPU with precision "auto" = no autocast), in training (LM and NAR) and in the SDK's
    audio_to_text and video_to_audio. It used to fail: 'expected m1 and m2 to have the same dtype'."""
    from c3llm.core.config import load_file

    data = load_file(Path(__file__).resolve().parents[1] / "configs" / "tiny.toml")
    data["backbone"].update(dtype="bfloat16", mode="lora")
    pipe = sdk.Pipeline.from_config(data)
    model = pipe.model
    assert model.embed_dtype == torch.bfloat16
    g = torch.Generator().manual_seed(0)
    items = [{**item, "audio": torch.randn(5, model.encoders["audio"].output_dim, generator=g),
              "video": torch.randn(4, model.encoders["video"].output_dim, generator=g)}
             for item in random_items(pipe)]
    weights = TaskWeights(t2a=1.0, v2a=1.0, vt2a=1.0, a2t=1.0)
    optim = OptimConfig(steps=2, lr=1e-3, warmup_steps=0, checkpoint_every=100, tensorboard=False)
    freeze_for_stage(model, "lm")
    history = Trainer(LMObjective(model), TaskSampler(items, model.sequences, weights, 8), optim, tmp_path / "lm",
                      name="lm", progress=False).run()
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    freeze_for_stage(model, "nar")
    Trainer(NARObjective(model), NARSampler(items, weights, 4), optim, tmp_path / "nar", name="nar",
            progress=False).run()

    model.eval()
    wav = sdk.Audio(0.1 * torch.randn(1, 8000, generator=g), 16000)
    assert isinstance(pipe.audio_to_text(wav, max_tokens=3), str)
    assert isinstance(pipe.audio_to_text(wav, strategy="beam", num_beams=2, max_tokens=3), str)
    video = sdk.Video.from_frames(torch.randint(0, 255, (6, 32, 32, 3), dtype=torch.uint8, generator=g), fps=10.0)
    audio = pipe.video_to_audio(video.save(tmp_path / "v.mp4"), seed=0)
    assert torch.isfinite(audio.waveform).all()


def mixed_config(world: Path, out_dir: Path, train) -> dict:
    """tiny.toml's components, trained on the paper's mix of datasets written by the synthetic world."""
    from c3llm.core.config import load_file

    data = load_file(Path(__file__).resolve().parents[1] / "configs" / "tiny.toml")
    data["run"] = {"name": "mixed", "out_dir": str(out_dir), "seed": 0, "threads": 1}
    data["refiner"].update(dim=32, num_layers=1, num_heads=2)
    data["data"] = {"train": train}
    small = dict(batch_size=6, lr=1e-3, warmup_steps=0, log_every=1, checkpoint_every=100, tensorboard=False)
    data["train"] = {"lm": {"steps": 8, **small}, "nar": {"steps": 2, **small}}
    return data


def test_a_mix_of_datasets_trains_all_three_tasks(tmp_path):
    """AudioCaps + Clotho serve T2A and A2T, VGGSound (no captions) serves V2A: the LM stage
    trains all three, each set only on its tasks, and the old single-table form still works."""
    import json

    from c3llm.app.run_config import parse_run_config
    from c3llm.app.stages import run_stages, train_items
    from c3llm.core.registry import get_registry
    from c3llm.plugins.datasets.synthetic import WorldConfig, generate_world

    world = tmp_path / "world"
    generate_world(WorldConfig(num_train=6, num_test=2, num_test_novel=2, duration=1.0, max_events=2), world,
                   progress=False)
    train = {
        "audiocaps": {"name": "audiocaps", "root": str(world), "split": "train", "tasks": ["t2a", "a2t"]},
        "clotho": {"name": "clotho", "root": str(world), "split": "development", "tasks": ["t2a", "a2t"],
                   "weight": 0.5},
        "vggsound": {"name": "vggsound", "root": str(world), "split": "train", "tasks": ["v2a"]},
    }
    config = parse_run_config(mixed_config(world, tmp_path / "runs", train), registry=get_registry())
    assert [s.label for s in config.data.train_sets()] == ["data.train.audiocaps", "data.train.clotho",
                                                           "data.train.vggsound"]
    ctx = run_stages(config, ["prepare", "train"], registry=get_registry(), progress=False)
    records = [json.loads(line) for line in (ctx.directory / "train" / "lm" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_t2a", "loss_a2t", "loss_v2a"} <= {k for r in records for k in r}
    assert (ctx.directory / "pipeline" / "pipeline.json").is_file()

    from c3llm.app.training.tasks import LM_TASKS, TaskSampler, TaskWeights

    items = train_items(ctx, ctx.initial_pipeline().model)
    sampler = TaskSampler(items, ctx.initial_pipeline().model.sequences, TaskWeights(), 4)
    sources = {t: {it["source"] for it in sampler.pools[t].items} for t in LM_TASKS}
    assert sources["v2a"] == {"data.train.vggsound"}  # VGGSound items have video, and serve only V2A
    assert sources["t2a"] == sources["a2t"] == {"data.train.audiocaps", "data.train.clotho"}

    # the list form and the single-table form parse to the same kind of sets
    listed = parse_run_config(mixed_config(world, tmp_path / "runs", list(train.values())), registry=get_registry())
    assert [s.label for s in listed.data.train_sets()] == ["data.train[0]", "data.train[1]", "data.train[2]"]
    single = parse_run_config(mixed_config(world, tmp_path / "runs", {"name": "synthetic", "root": str(world)}))
    assert [(s.label, s.tasks, s.weight) for s in single.data.train_sets()] == [("data.train", LM_TASKS, 1.0)]


def test_dataset_weights_set_each_sets_share_of_a_task():
    from c3llm.app.training.tasks import _Pool

    items = [{"id": f"a{i}", "source": "a", "source_weight": 3.0} for i in range(10)]
    items += [{"id": f"b{i}", "source": "b", "source_weight": 1.0} for i in range(2)]
    pool = _Pool(items)
    g = torch.Generator().manual_seed(0)
    drawn = [pool.draw(g)["source"] for _ in range(4000)]
    assert abs(drawn.count("a") / len(drawn) - 0.75) < 0.03  # 3:1 by set, whatever the set sizes
    one = _Pool([{"id": str(i)} for i in range(5)])
    assert one.probs is None  # one dataset: drawn exactly as before


@pytest.mark.parametrize(("train", "message"), [
    ({"name": "synthetic", "root": "x", "tasks": ["t2x"]}, r"data.train.tasks: unknown task 't2x'"),
    ([{"name": "synthetic", "root": "x", "weight": 0}], r"data.train\[0\].weight must be a positive number"),
    ([], "data.train is empty"),
])
def test_bad_training_sets_are_config_errors(train, message):
    from c3llm.app.run_config import parse_run_config
    from c3llm.core.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse_run_config({"decoder": {"name": "encodec"}, "backbone": {"name": "gemma"}, "data": {"train": train}})


def test_run_device_defaults_to_auto(monkeypatch):
    """run.device = "auto" (the default): cuda when a GPU is visible, else cpu."""
    from c3llm.app.run_config import parse_run_config
    from c3llm.app.stages import RunContext
    from c3llm.core.registry import get_registry
    from c3llm.method.pipeline_config import parse_pipeline_spec, resolve_device

    data = {"decoder": {"name": "encodec"}, "backbone": {"name": "gemma"}}
    config = parse_run_config(data)
    assert config.run.device == "auto"
    assert RunContext(config, get_registry()).device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert parse_pipeline_spec(data).device == resolve_device("auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
    assert RunContext(config, get_registry()).device == "cuda"


def test_predict_honours_max_seconds_for_long_reference_clips(tmp_path):
    """A reference clip longer than [generate.sampling] max_seconds (10 s AudioCaps clips) is
    matched for its first max_seconds, not its full length."""
    from c3llm.app.evaluation.generate import generate_for_split
    from c3llm.core.config import load_file
    from c3llm.core.media import load_audio
    from c3llm.core.roles.dataset import Sample

    data = load_file(Path(__file__).resolve().parents[1] / "configs" / "tiny.toml")
    data["generate"] = {"sampling": {"max_seconds": 0.4}, "text": {"max_tokens": 2}}
    data.pop("video_encoder")
    pipe = sdk.Pipeline.from_config(data)
    wav = sdk.Audio(0.1 * torch.randn(1, 16000), 16000).save(tmp_path / "long.wav")
    sample = Sample(id="long", split="test", audio_path=wav, captions=("a dog barks",))
    out = generate_for_split(pipe, [sample], tmp_path / "generated", progress=False)
    assert load_audio(out / "t2a" / "long.wav").duration == pytest.approx(0.4, abs=1e-3)


@pytest.mark.parametrize("merged", [False, True], ids=["peft", "merged"])
def test_beam_search_uses_the_kv_cache_and_finds_the_same_captions(merged):
    """Beam captions run the prompt once and then one token per beam per step (per-step cost
    independent of the prefix; it used to re-run the whole prefix, ~24 s a step at Gemma-2B
    dims), and find exactly what the prefix-re-running search finds."""
    from c3llm.core.config import load_file
    from c3llm.method.generation import (
        TextDecodingConfig,
        _beam_search,
        _beam_search_uncached,
    )

    data = load_file(Path(__file__).resolve().parents[1] / "configs" / "tiny.toml")
    data["backbone"]["mode"] = "lora"
    data.pop("video_encoder")
    model = sdk.Pipeline.from_config(data).model.eval()
    with torch.no_grad():  # a random LoRA B (zero-initialised) so that the adapters matter
        for name, p in model.backbone.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    if merged:
        model.backbone.prepare_for_inference()
    g = torch.Generator().manual_seed(0)
    dim = model.encoders["audio"].output_dim
    prompts = [model.sequences.audio_to_text(torch.randn(n, dim, generator=g)) for n in (3, 5, 8)]
    decoding = TextDecodingConfig(strategy="beam", num_beams=3, max_tokens=12, length_penalty=0.7)
    widths = []
    forward = model.backbone.forward

    def counting(embeds, *args, **kwargs):
        widths.append(embeds.shape[1])
        return forward(embeds, *args, **kwargs)

    model.backbone.forward = counting
    with torch.no_grad():
        for prompt in prompts:
            widths.clear()
            cached = _beam_search(model, prompt, decoding)
            assert widths[0] == len(prompt) and all(w == 1 for w in widths[1:]), widths
            assert cached == _beam_search_uncached(model, prompt, decoding)
    assert any(len(_beam_search(model, p, decoding)) > 2 for p in prompts)  # not trivially eos at once


def test_the_paper_scale_walkthrough_matches_the_shipped_configs():
    """docs/paper_scale.md: its [data.train] block is paper.toml's and llama3.toml's, and its
    --set overrides reach real keys of both configs (a dry parse with every plugin's schema)."""
    import re

    import tomllib

    from c3llm.app.run_config import parse_run_config
    from c3llm.core.config import apply_overrides, load_file
    from c3llm.core.registry import get_registry

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "paper_scale.md").read_text()
    block = re.search(r"```toml\n(.+?)```", doc, flags=re.S).group(1)
    overrides = re.findall(r"--set (\S+)", re.search(r"```bash\nc3llm-run configs/paper.toml \\\n(.+?)```", doc,
                                                      flags=re.S).group(1))
    assert len(overrides) == 8
    for name in ("paper", "llama3"):
        data = load_file(root / "configs" / f"{name}.toml")
        assert tomllib.loads(block)["data"]["train"] == data["data"]["train"]
        changed = apply_overrides(data, [o.replace("=/", "=/elsewhere/") for o in overrides])
        config = parse_run_config(changed, base_dir=root / "configs", registry=get_registry())
        roots = {s.label: s.spec["root"] for s in config.data.train_sets()}
        assert roots == {f"data.train.{k}": f"/elsewhere/data/{k}" for k in ("audiocaps", "clotho", "vggsound")}
        assert config.components["backbone"]["pretrained"].startswith("/elsewhere/models/")
