"""train-codec on the foundation corpus: trained once per (decoder config, [codec_train]) under
{out_dir}/foundation/, reused by the next run, loaded by the run through its codec folder."""

from __future__ import annotations

import logging

import torch

from c3llm.app.run_config import parse_run_config
from c3llm.app.stages import RunContext, stage_train_codec
from c3llm.core.registry import get_registry

DECODER = {"name": "mel-rvq", "sample_rate": 8000, "n_fft": 256, "stft_hop": 64, "frames_per_code": 2, "n_mels": 24,
           "codebook_size": 16, "width": 16, "latent_dim": 8, "num_res_blocks": 1, "griffin_lim_iters": 4,
           "fit_steps": 20, "fit_batch": 4, "fit_crop_frames": 8}


def _context(tmp_path, name: str) -> RunContext:
    data = {"run": {"name": name, "out_dir": str(tmp_path)}, "decoder": DECODER, "backbone": {"name": "gemma"},
            "codec_train": {"corpus": "foundation", "foundation_clips": 6, "foundation_seconds": 1.0,
                            "eval_clips": 2, "eval_seconds": 0.5}}
    return RunContext(parse_run_config(data, registry=get_registry()), get_registry(), progress=False)


def test_the_foundation_codec_is_trained_once_and_reused_by_the_next_run(tmp_path, caplog):
    first = _context(tmp_path, "one")
    with caplog.at_level(logging.INFO):
        stage_train_codec(first)
    assert "pretrain codec: building" in caplog.text
    cache = [p for p in (tmp_path / "foundation").iterdir() if p.name.startswith("codec-")]
    assert len(cache) == 1 and (cache[0] / "model.safetensors").is_file()
    second = _context(tmp_path, "two")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        stage_train_codec(second)
    assert "pretrain codec: reused" in caplog.text
    wav = 0.1 * torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(0))
    a, b = first.codec(), second.codec()
    assert torch.equal(a.encode(wav), b.encode(wav))
    assert (second.codec_dir / "report.json").is_file()
    changed = _context(tmp_path, "three")
    changed = RunContext(parse_run_config({**changed.config.to_mapping(), "decoder": {**DECODER, "latent_dim": 4}},
                                          registry=get_registry()), get_registry(), progress=False)
    stage_train_codec(changed)
    assert len([p for p in (tmp_path / "foundation").iterdir() if p.name.startswith("codec-")]) == 2
