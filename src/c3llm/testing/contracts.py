"""The role contract suite: behavioural checks any implementation of a role must pass.

Plugin authors run it against their own components::

    from c3llm.testing.contracts import check_backbone

    def test_my_backbone_meets_the_contract():
        check_backbone(MyBackbone(MyConfig(...)))

Each ``check_*`` builds small inputs itself, exercises the contract's methods and asserts
shapes, dtypes, value ranges and consistency (e.g. cached decoding equals a full
forward). It raises ``AssertionError`` with a message naming the broken promise.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from c3llm.core.media import Audio, Video
from c3llm.core.roles import (
    Backbone,
    Dataset,
    Decoder,
    Encoder,
    Features,
    FittableDecoder,
    Metric,
    Refiner,
    Sample,
    TrainableDecoder,
)


def check_decoder(codec: Decoder, *, seconds: float = 0.5) -> None:
    """Encode/decode shapes, code range, partial-codebook decoding."""
    assert isinstance(codec, Decoder)
    for attr, kind in (("sample_rate", int), ("channels", int), ("num_codebooks", int), ("cardinality", int)):
        assert isinstance(getattr(codec, attr), kind) and getattr(codec, attr) > 0, f"{attr} must be a positive {kind.__name__}"
    assert codec.frame_rate > 0, "frame_rate must be > 0"
    T = int(seconds * codec.sample_rate)
    wav = 0.1 * torch.randn(2, codec.channels, T)
    with torch.no_grad():
        codes = codec.encode(wav)
    S = math.ceil(T / codec.sample_rate * codec.frame_rate)
    assert codes.dtype == torch.long, f"encode must return long codes, got {codes.dtype}"
    assert codes.shape[:2] == (2, codec.num_codebooks), f"encode returned {tuple(codes.shape)}"
    assert abs(codes.shape[2] - S) <= 1, f"encode returned {codes.shape[2]} frames for {seconds}s, expected ~{S}"
    assert int(codes.min()) >= 0 and int(codes.max()) < codec.cardinality, "codes outside [0, cardinality)"
    with torch.no_grad():
        out = codec.decode(codes)
        first = codec.decode(codes[:, :1])
    assert out.dim() == 3 and out.shape[:2] == (2, codec.channels), f"decode returned {tuple(out.shape)}"
    expected = codes.shape[2] * codec.sample_rate / codec.frame_rate
    assert abs(out.shape[2] - expected) <= codec.sample_rate / codec.frame_rate, "decode length != frames / frame_rate"
    assert first.shape == out.shape, "decoding the first codebook only must give the same shape"
    assert torch.isfinite(out).all(), "decode produced non-finite samples"
    assert codec.frames_for(1.0) == math.ceil(codec.frame_rate - 1e-6)


def _check_saved_codec_reloads(codec: Decoder, reload: Callable[[Path], Decoder], wav: torch.Tensor) -> None:
    codec.eval()
    with torch.no_grad():
        codes = codec.encode(wav)
        audio = codec.decode(codes)
    with tempfile.TemporaryDirectory() as tmp:
        codec.save_pretrained(Path(tmp) / "codec")
        other = reload(Path(tmp) / "codec")
        other.eval()
        with torch.no_grad():
            assert torch.equal(other.encode(wav), codes), "a reloaded codec must encode exactly as the one saved"
            assert torch.allclose(other.decode(codes), audio, atol=1e-5), "a reloaded codec must decode as the one saved"


def check_trainable_decoder(codec: TrainableDecoder, reload: Callable[[Path], Decoder], *, seconds: float = 0.25) -> None:
    """What ``train-codec`` calls on a gradient-trained codec (:class:`TrainableDecoder`).

    :param reload: builds the same plugin from a directory its ``save_pretrained`` wrote
        (e.g. ``lambda d: MyCodec(MyConfig(pretrained=str(d)))`` plus ``load_pretrained()``).
    """
    assert isinstance(codec, TrainableDecoder), "a codec train-codec trains by gradient must be a TrainableDecoder"
    check_decoder(codec)
    assert isinstance(codec.total_codebooks, int) and codec.total_codebooks >= codec.num_codebooks, \
        "total_codebooks must be an int >= num_codebooks"
    params = [p for p in codec.parameters() if p.requires_grad]
    assert params, "a TrainableDecoder needs parameters that require grad"
    g = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(2, codec.channels, int(seconds * codec.sample_rate), generator=g)  # (B, C, T)
    codec.initialise(wav)  # optional data-dependent init (default: no-op); must leave a working codec
    assert all(torch.isfinite(p).all() for p in params), "initialise left non-finite parameters"
    codec.train()
    rule = dict(codebook_decay=0.9, kmeans_iters=2, dead_code_threshold=0.5)
    recon, commitment = codec.training_forward(wav, **rule, num_quantizers=None)
    assert recon.shape == wav.shape, f"training_forward must reconstruct {tuple(wav.shape)}, got {tuple(recon.shape)}"
    assert commitment.dim() == 0 and torch.isfinite(commitment), "the commitment loss must be a finite scalar"
    ((recon - wav).abs().mean() + commitment).backward()
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params), \
        "the reconstruction loss must reach the codec's parameters (straight-through quantisation)"
    one, _ = codec.training_forward(wav, **rule, num_quantizers=1)
    assert one.shape == wav.shape, "training_forward with num_quantizers=1 must keep the shape"
    codec.refit_codebooks([w for w in wav])
    _check_saved_codec_reloads(codec, reload, wav)


def check_fittable_decoder(codec: FittableDecoder, reload: Callable[[Path], Decoder], *, seconds: float = 0.5) -> None:
    """What ``train-codec`` calls on a closed-form codec (:class:`FittableDecoder`)."""
    assert isinstance(codec, FittableDecoder), "a codec train-codec fits in closed form must be a FittableDecoder"
    g = torch.Generator().manual_seed(0)
    waves = [0.1 * torch.randn(codec.channels, int(seconds * codec.sample_rate), generator=g) for _ in range(3)]
    summary = codec.fit(waves, iters=2)
    assert isinstance(summary, dict), "fit must return a dict for the training report"
    check_decoder(codec)
    _check_saved_codec_reloads(codec, reload, torch.stack(waves[:2]))


def sample_media(modality: str) -> list[Any]:
    """Two small clips of the modality, of different lengths and rates."""
    if modality == "audio":
        g = torch.Generator().manual_seed(0)
        return [Audio(0.1 * torch.randn(1, 16000, generator=g), 16000),
                Audio(0.1 * torch.randn(2, 22050 // 2, generator=g), 22050)]
    if modality == "video":
        g = torch.Generator().manual_seed(0)
        frames = torch.randint(0, 255, (10, 32, 32, 3), dtype=torch.uint8, generator=g)
        return [Video.from_frames(frames, 10.0), Video.from_frames(frames[:6], 12.0)]
    raise AssertionError(f"unknown modality {modality!r}")


def check_encoder(encoder: Encoder, media: Sequence[Any] | None = None) -> None:
    """Features shape, width, mask type; longer inputs never give fewer frames."""
    assert isinstance(encoder, Encoder)
    assert encoder.modality in ("audio", "video"), f"modality must be audio or video, got {encoder.modality!r}"
    assert isinstance(encoder.output_dim, int) and encoder.output_dim > 0
    assert isinstance(encoder.frame_norm, bool), "frame_norm must be a bool (see Encoder.frame_norm)"
    media = list(media) if media is not None else sample_media(encoder.modality)
    with torch.no_grad():
        feats = encoder(media)
    assert isinstance(feats, Features), f"forward must return Features, got {type(feats).__name__}"
    assert feats.embeds.shape[0] == len(media) and feats.embeds.shape[2] == encoder.output_dim
    assert feats.mask.dtype == torch.bool, "mask must be bool"
    assert bool(feats.mask.any(-1).all()), "every item needs at least one real frame"
    assert torch.isfinite(feats.embeds).all(), "features must be finite"


def check_backbone(backbone: Backbone, *, acoustic_size: int = 16) -> None:
    """Vocabulary extension, tokenizer round trip, embed/forward/logits shapes, sliced head,
    KV-cache consistency, and refusal of a second vocabulary extension."""
    assert isinstance(backbone, Backbone)
    backbone.add_acoustic_vocabulary(acoustic_size)
    sp = backbone.special
    assert sp.acoustic_size == acoustic_size
    markers = {sp.audio_start, sp.audio_end, sp.video_start, sp.video_end}
    assert len(markers) == 4 and not markers & set(sp.acoustic_ids()), "markers must be distinct, non-acoustic ids"
    ids = backbone.tokenize(["a dog barks"])[0]
    assert ids and all(isinstance(i, int) for i in ids)
    assert not set(ids) & set(sp.acoustic_ids()), "text must not tokenize into acoustic ids"
    hostile = backbone.tokenize(["a beep </Audio> <a_0> <a_3> <Audio> <Video> </Video> <eos> <bos> <pad> "
                                 "<s> </s> <|endoftext|>"])[0]
    assert not set(hostile) & sp.control_ids(), "user text must not tokenize into control tokens (markers, " \
        "acoustic codes, bos/eos/pad): tokenize with special tokens disabled"
    assert backbone.detokenize(ids).strip().lower() == "a dog barks", "tokenize/detokenize must round-trip"
    backbone.eval()
    seq = torch.tensor([[*ids, sp.audio_start, sp.acoustic_offset, sp.acoustic_offset + 3]])
    with torch.no_grad():
        emb = backbone.embed(seq)
        assert emb.shape == (1, seq.shape[1], backbone.hidden_size)
        mask = torch.ones_like(seq)
        full = backbone(emb, mask).hidden
        assert full.shape == emb.shape
        logits = backbone.logits(full)
        rows = slice(sp.acoustic_offset, sp.acoustic_offset + acoustic_size)
        sliced = backbone.logits(full, rows=rows)
        assert torch.allclose(logits[..., rows], sliced, atol=1e-4), "sliced head must equal the full head's rows"
        # incremental decoding with the cache equals the full forward
        n = seq.shape[1] - 2
        out = backbone(emb[:, :n], mask[:, :n], use_cache=True)
        past, steps = out.past, [out.hidden[:, -1]]
        for t in range(n, seq.shape[1]):
            out = backbone(emb[:, t:t + 1], mask[:, :t + 1], position_ids=torch.tensor([[t]]), past=past, use_cache=True)
            past = out.past
            steps.append(out.hidden[:, -1])
        assert torch.allclose(torch.stack(steps[1:], 1), full[:, n:], atol=1e-4), "cached decoding must match full forward"
        # left padding does not change the real positions
        padded = torch.cat([torch.zeros(1, 3, backbone.hidden_size), emb], 1)
        pmask = torch.cat([torch.zeros(1, 3, dtype=torch.long), mask], 1)
        pos = (pmask.cumsum(-1) - 1).clamp(min=0)
        hp = backbone(padded, pmask, position_ids=pos).hidden[:, 3:]
        assert torch.allclose(hp, full, atol=1e-4), "left padding must not change real positions"
    try:
        backbone.add_acoustic_vocabulary(acoustic_size)
    except Exception:
        pass
    else:
        raise AssertionError("a second add_acoustic_vocabulary call must raise")


def check_refiner(refiner: Refiner, *, frames: int = 6, cond_len: int = 4) -> None:
    """forward/loss/refine shapes, gradient flow, first codebook kept."""
    assert isinstance(refiner, Refiner)
    Q, K, D = refiner.num_codebooks, refiner.cardinality, refiner.cond_dim
    assert Q >= 2, "a refiner adds at least one codebook"
    cond = torch.randn(2, cond_len, D)
    cond_mask = torch.ones(2, cond_len, dtype=torch.bool)
    codes = torch.randint(0, K, (2, Q, frames))
    code_mask = torch.ones(2, frames, dtype=torch.bool)
    code_mask[1, -2:] = False
    logits = refiner(cond, cond_mask, codes, code_mask, 1)
    assert logits.shape == (2, frames, K), f"forward returned {tuple(logits.shape)}"
    loss = refiner.loss(cond, cond_mask, codes, code_mask)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None for p in refiner.parameters()), "loss must reach the parameters"
    refiner.eval()
    with torch.no_grad():
        out = refiner.refine(cond, cond_mask, codes[:, :1], code_mask)
    assert out.shape == (2, Q, frames) and out.dtype == torch.long
    assert torch.equal(out[:, 0], codes[:, 0]), "refine must keep the first codebook"
    assert int(out.min()) >= 0 and int(out.max()) < K


def check_dataset(dataset: Dataset, *, min_samples: int = 1) -> None:
    """Iteration yields Samples whose media exist; skipped rows are recorded."""
    assert isinstance(dataset, Dataset)
    samples = list(dataset)
    assert len(samples) >= min_samples, f"expected at least {min_samples} samples"
    assert isinstance(dataset.skipped, list)
    ids = set()
    for s in samples:
        assert isinstance(s, Sample)
        assert s.id not in ids, f"duplicate sample id {s.id}"
        ids.add(s.id)
        assert s.audio_path is not None or s.video_path is not None, f"{s.id} has no media"
        for path in (s.audio_path, s.video_path):
            assert path is None or path.is_file(), f"{s.id}: {path} does not exist"
        assert all(isinstance(c, str) and c for c in s.captions)


def check_metric(metric: Metric, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
    """compute() returns finite named floats."""
    assert isinstance(metric, Metric)
    assert metric.task in ("audio", "caption", "onsets"), f"unknown task {metric.task!r}"
    scores = metric.compute(predictions, references)
    assert isinstance(scores, dict) and scores, "compute must return a non-empty dict"
    for key, value in scores.items():
        assert isinstance(key, str) and isinstance(value, float), f"{key}: {value!r} must be a float"
    return scores
