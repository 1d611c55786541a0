"""prepare with worker processes (``jobs``) writes the same cache and report as a serial run."""

from __future__ import annotations

import json

import pytest
import torch
from test_prepare import TinyModel, _video, media  # noqa: F401  (media: the shared fixture)

from c3llm.app.features.cache import FeatureCache
from c3llm.app.features.prepare import prepare_features
from c3llm.core.errors import InputError
from c3llm.core.roles import Sample


def _cache_contents(root, keys):
    out = {}
    for kind, key in keys.items():
        cache = FeatureCache(root, key)
        out[kind] = {id: cache.get(id) for id in cache.ids()}
        out[kind + "/files"] = sorted(p.relative_to(root / key).as_posix() for p in (root / key).rglob("*.safetensors"))
        out[kind + "/index"] = json.loads((root / key / "index.json").read_text())["entries"] if (
            root / key / "index.json").exists() else None
    return out


def _report(report):
    data = report.to_dict()
    data.pop("elapsed_seconds"), data.pop("cache_root")
    return data


def _with_real_video_encoder() -> TinyModel:
    from c3llm.core.registry import get_registry

    model = TinyModel()
    model.encoders["video"] = get_registry().build("encoder", {"name": "rgb-flow", "fps": 10.0, "frame_size": 32})
    return model


@pytest.mark.parametrize("make_model", [TinyModel, _with_real_video_encoder], ids=["doubles", "rgb-flow"])
def test_two_jobs_write_the_serial_cache_and_report(media, tmp_path, make_model):  # noqa: F811
    bad = [Sample(id="missing", split="train", audio_path=tmp_path / "nope.wav"),
           Sample(id="still", split="train", video_path=_video(1, seed=9).save(tmp_path / "still.mp4"))]
    samples = [*media, *bad]
    serial = prepare_features(make_model(), samples, tmp_path / "serial", batch_size=2, progress=False)
    parallel = prepare_features(make_model(), samples, tmp_path / "parallel", batch_size=2, progress=False, jobs=2)
    assert _report(parallel) == _report(serial)
    assert serial.failures and serial.counts["video"].computed == 5
    a, b = _cache_contents(tmp_path / "serial", serial.keys), _cache_contents(tmp_path / "parallel", parallel.keys)
    assert a.keys() == b.keys()
    for name in a:
        if name.endswith(("/files", "/index")):
            assert a[name] == b[name], name
            continue
        assert a[name].keys() == b[name].keys()
        for id in a[name]:
            for field, tensor in a[name][id].items():
                assert tensor.dtype == b[name][id][field].dtype and torch.equal(tensor, b[name][id][field]), (name, id)


def test_parallel_run_resumes_a_partial_cache(media, tmp_path):  # noqa: F811
    prepare_features(TinyModel(), media[:3], tmp_path, batch_size=1, progress=False)
    report = prepare_features(TinyModel(), media, tmp_path, batch_size=1, progress=False, jobs=2)
    assert (report.counts["codes"].computed, report.counts["codes"].reused) == (3, 3)
    again = prepare_features(TinyModel(), media, tmp_path, batch_size=1, progress=False, jobs=2)
    assert again.counts["codes"].computed == 0 and again.counts["codes"].reused == 6


def test_jobs_must_be_positive(media, tmp_path):  # noqa: F811
    with pytest.raises(InputError, match="jobs"):
        prepare_features(TinyModel(), media, tmp_path, jobs=0, progress=False)
