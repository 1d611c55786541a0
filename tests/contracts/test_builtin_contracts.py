"""The role contract suite (``c3llm.testing.contracts``) over every built-in component.

A table of small, offline cases drives it; a test fails when a registered built-in has no
case, so a new plugin cannot skip the contract.
"""

from __future__ import annotations

import pytest
import torch

from c3llm.core.media import Audio
from c3llm.core.registry import get_registry
from c3llm.core.roles import FittableDecoder, TrainableDecoder
from c3llm.testing import contracts

DECODERS = {"encodec": {"preset": "tiny"}, "melvq": {"codebook_size": 16, "griffin_lim_iters": 4},
            "mel-rvq": {"codebook_size": 16, "griffin_lim_iters": 4, "width": 16, "latent_dim": 8, "num_res_blocks": 1,
                        "fit_steps": 3, "fit_batch": 4, "fit_crop_frames": 8}}
ENCODERS = {
    "clap": {"preset": "tiny", "num_local_frames": 4},
    "rgb-flow": {"extractor": "handcrafted", "fps": 8.0, "frame_size": 32},
    "logmel": {},
}
BACKBONES = {
    "gemma": [{"mode": "lora", "hidden_size": 32, "num_layers": 1}, {"mode": "full", "hidden_size": 32, "num_layers": 1}],
    "llama": [{"mode": "lora", "hidden_size": 32, "num_layers": 1}],
}
REFINERS = {"nar": [{"num_codebooks": 2, "cardinality": 16, "cond_dim": 24, "dim": 32, "num_layers": 1, "num_heads": 2},
                    {"num_codebooks": 4, "cardinality": 8, "cond_dim": 8, "dim": 16, "num_layers": 1, "num_heads": 2}]}
#: dataset -> config relative to a tiny synthetic world, which writes every public layout
#: except VAS (built by ``vas_root``)
DATASETS = {
    "synthetic": {"split": "train"},
    "audiocaps": {"split": "train"},
    "clotho": {"split": "development"},
    "vggsound": {"split": "train"},
    "vas": {"split": "train"},
}
AUDIO_METRICS = ("fad", "kl", "mkl", "isc", "onset_acc", "onset_ap")
CAPTION_METRICS = ("cider_d",)
METADATA_METRICS = ("synth_audio", "synth_captions")
UNAVAILABLE_HERE = ("spice", "spider")  # need Java + Stanford CoreNLP models: tested to refuse


def test_every_builtin_has_a_contract_case():
    reg = get_registry()
    covered = {
        "decoder": set(DECODERS), "encoder": set(ENCODERS), "backbone": set(BACKBONES), "refiner": set(REFINERS),
        "dataset": set(DATASETS),
        "metric": set(AUDIO_METRICS + CAPTION_METRICS + METADATA_METRICS + UNAVAILABLE_HERE),
    }
    for role, names in covered.items():
        builtin = {s.name for s in reg.specs(role) if s.distribution == "c3llm"}
        assert builtin <= names, f"{role} without a contract case: {builtin - names}"


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_decoder_contract(name):
    contracts.check_decoder(get_registry().build("decoder", {"name": name, **DECODERS[name]}))


def _reload_decoder(name: str):
    def reload(directory):
        codec = get_registry().build("decoder", {"name": name, **DECODERS[name], "pretrained": str(directory)})
        codec.load_pretrained()
        return codec
    return reload


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_trainable_codec_contract(name):
    """Every built-in codec declares how train-codec teaches it, and passes that contract."""
    codec = get_registry().build("decoder", {"name": name, **DECODERS[name]})
    if isinstance(codec, TrainableDecoder):
        contracts.check_trainable_decoder(codec, _reload_decoder(name))
    else:
        assert isinstance(codec, FittableDecoder), f"{name}: train-codec cannot teach it (neither contract)"
        contracts.check_fittable_decoder(codec, _reload_decoder(name))


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_encoder_contract(name):
    contracts.check_encoder(get_registry().build("encoder", {"name": name, **ENCODERS[name]}))


@pytest.mark.parametrize(("name", "params"), [(n, p) for n, ps in sorted(BACKBONES.items()) for p in ps],
                         ids=lambda v: v if isinstance(v, str) else v.get("mode"))
def test_backbone_contract(name, params):
    contracts.check_backbone(get_registry().build("backbone", {"name": name, **params}))


@pytest.mark.parametrize(("name", "params"), [(n, p) for n, ps in sorted(REFINERS.items()) for p in ps],
                         ids=lambda v: v if isinstance(v, str) else f"Q{v.get('num_codebooks')}")
def test_refiner_contract(name, params):
    contracts.check_refiner(get_registry().build("refiner", {"name": name, **params}))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from c3llm.plugins.datasets.synthetic import WorldConfig, generate_world

    root = tmp_path_factory.mktemp("world")
    generate_world(WorldConfig(num_train=4, num_test=2, num_test_novel=2, duration=1.0, max_events=2), root,
                   progress=False)
    return root


@pytest.fixture(scope="module")
def vas_root(tmp_path_factory, world):
    """SpecVQGAN's VAS layout, with the world's clips standing in for two classes."""
    import shutil

    root = tmp_path_factory.mktemp("vas")
    rows = []
    for i, (label, video) in enumerate(zip(("dog", "drum"), sorted((world / "video").glob("*.mp4"))[:2])):
        vid = f"clip{i}"
        (root / "videos" / label).mkdir(parents=True)
        shutil.copy(video, root / "videos" / label / f"{vid}.mp4")
        wav = sorted((world / "audio").glob("*.wav"))[i]
        (root / "features" / label / "audio_10s_22050hz").mkdir(parents=True)
        shutil.copy(wav, root / "features" / label / "audio_10s_22050hz" / f"{vid}.wav")
        rows.append(f"{label}/{vid}")
    (root / "vas_train.txt").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_dataset_contract(name, world, vas_root):
    root = vas_root if name == "vas" else world
    contracts.check_dataset(get_registry().build("dataset", {"name": name, "root": str(root), **DATASETS[name]}))


def _clips(n: int, seed: int) -> list[Audio]:
    g = torch.Generator().manual_seed(seed)
    sr = 16000
    out = []
    for i in range(n):
        wav = torch.zeros(1, sr)
        for onset in (0.1 + 0.2 * i % 0.6, 0.7):
            start = int(onset * sr)
            wav[0, start:start + 800] = 0.5 * torch.randn(800, generator=g)
        out.append(Audio(wav, sr))
    return out


@pytest.mark.parametrize("name", AUDIO_METRICS)
def test_audio_metric_contract(name):
    from c3llm.scoring.reference_classifier import (
        ReferenceClassifier,
        ReferenceClassifierConfig,
        ReferenceClassifierNet,
    )

    metric = get_registry().build("metric", name)
    if hasattr(metric, "use_network"):  # an untrained reference network: real computation, any weights
        torch.manual_seed(0)
        net = ReferenceClassifierNet(ReferenceClassifierConfig(num_classes=3))
        metric.use_network(ReferenceClassifier(net, ["a", "b", "c"]))
    contracts.check_metric(metric, _clips(12, 0), _clips(12, 1))


def test_caption_metric_contract():
    metric = get_registry().build("metric", "cider_d")
    scores = contracts.check_metric(metric, ["a dog barks", "rain falls"],
                                    [["a dog is barking", "dog barks"], ["rain falls on a roof"]])
    assert scores["cider_d"] > 0


def test_metadata_metric_contracts(world):
    samples = list(get_registry().build("dataset", {"name": "synthetic", "root": str(world), "split": "train"}))
    from c3llm.core.media import load_audio

    audio = [load_audio(s.audio_path) for s in samples]
    metric = get_registry().build("metric", {"name": "synth_audio", "source_accuracy": False})
    contracts.check_metric(metric, audio, [s.metadata for s in samples])
    captions = get_registry().build("metric", "synth_captions")
    scores = contracts.check_metric(captions, [s.captions[0] for s in samples], [s.metadata for s in samples])
    assert scores["caption_source_acc"] == 1.0


@pytest.mark.parametrize("name", UNAVAILABLE_HERE)
def test_unavailable_metrics_refuse_rather_than_fake(name):
    from c3llm.core.errors import UnavailableError

    metric = get_registry().build("metric", name)
    with pytest.raises(UnavailableError):
        metric.compute(["a dog barks"], [["a dog barks"]])
