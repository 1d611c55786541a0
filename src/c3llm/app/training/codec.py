"""Codec training stage: teach a trainable codec to reconstruct audio (EnCodec recipe, no GAN).

Losses, as in EnCodec (Défossez et al., 2022) minus the adversarial terms:

- time-domain L1 between input and reconstruction;
- multi-scale mel loss: for each STFT scale, L1 between log-mel spectrograms plus L1 between
  mel magnitudes (mel filterbanks built here from ``torch.stft``; no torchaudio);
- commitment loss from the codec's quantiser; codebooks themselves learn by k-means init +
  EMA inside the codec (:mod:`c3llm.plugins.decoders.encodec_vq` for EnCodec).

The MS-STFT discriminator and feature-matching losses are not implemented: on the CPU budget
this stage targets (minutes), they roughly double the cost per step and pay off only over
long training runs. Output: the codec saved with its own ``save_pretrained`` (for EnCodec an
HF-format directory its ``pretrained`` key loads), ``train_config.json`` and ``report.json``
with the loss curve and the reconstruction quality (mel distance, SI-SNR) on held-out
synthetic clips (:func:`synthetic_clips`).

The codec declares how it learns by the contract it implements
(:mod:`c3llm.core.roles.decoder`):

- :class:`~c3llm.core.roles.FittableDecoder` (``fit``): closed form (k-means codebooks, e.g.
  ``melvq``); the gradient settings of :class:`CodecTrainConfig` do not apply;
- :class:`~c3llm.core.roles.TrainableDecoder` (``training_forward``, ``refit_codebooks``):
  trained by the loop below (``encodec``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.nn.functional as F

from c3llm.core.config import field, in_range, one_of
from c3llm.core.errors import InputError, MediaError, PluginError
from c3llm.core.media import Audio, load_audio
from c3llm.core.roles import FittableDecoder, TrainableDecoder
from c3llm.core.spectral import mel_spectrogram

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class CodecTrainConfig:
    """Settings of :func:`train_codec`."""

    steps: int = field(600, help="optimiser steps", validator=in_range(1))
    batch_size: int = field(4, help="segments per step", validator=in_range(1))
    segment_seconds: float = field(0.5, help="length of each random training crop", validator=in_range(0.01))
    lr: float = field(1e-3, help="Adam learning rate", validator=in_range(0.0, low_open=True))
    betas: tuple[float, float] = field((0.5, 0.9), help="Adam betas (EnCodec: 0.5, 0.9)")
    lr_min_ratio: float = field(0.1, help="cosine decay ends at lr * lr_min_ratio", validator=in_range(0.0, 1.0))
    grad_clip: float = field(1.0, help="max gradient norm (0 = off)", validator=in_range(0.0))
    weight_time: float = field(0.1, help="weight of the time-domain L1 loss", validator=in_range(0.0))
    weight_mel: float = field(1.0, help="weight of the multi-scale mel loss", validator=in_range(0.0))
    weight_spectral: float = field(
        0.0, validator=in_range(0.0),
        help="weight of the multi-resolution spectral-convergence loss (keeps sparse events from collapsing to silence)",
    )
    weight_commit: float = field(1.0, help="weight of the commitment loss", validator=in_range(0.0))
    mel_scales: tuple[int, ...] = field(
        (64, 128, 256, 512, 1024, 2048), help="STFT window sizes of the multi-scale mel loss (hop = window / 4)"
    )
    n_mels: int = field(64, help="mel bands per scale (capped at window / 4)", validator=in_range(8))
    codebook_decay: float = field(0.99, help="EMA decay of the codebooks", validator=in_range(0.0, 1.0))
    kmeans_iters: int = field(50, help="k-means iterations of the codebook init", validator=in_range(1))
    min_crop_energy: float = field(
        0.0, validator=in_range(0.0),
        help="redraw training crops quieter than this fraction of their clip's RMS (0 = any crop)",
    )
    refit_codebooks: bool = field(
        True, help="after training, refit the codebooks by k-means over all training frames (codecs that "
                   "provide refit_codebooks); keeps codebook 1 informative when few frames fit in a step",
    )
    quantizer_dropout: float = field(
        0.0, validator=in_range(0.0, 1.0),
        help="probability that a step uses only the first n codebooks, n uniform in 1..Q (EnCodec's bandwidth "
             "sampling); without it codebook 1 can collapse while codebook 2 carries the signal",
    )
    dead_code_threshold: float = field(0.02, validator=in_range(0.0), help="re-seed codebook entries whose EMA count "
                                       "falls below this (EnCodec's 2.0 re-seeds ~all at CPU batch sizes; docs/codec.md)")
    init: str = field("lsuv", validator=one_of("lsuv", "none"), help="'lsuv': call the codec's initialise() on a probe batch")
    corpus: str = field("train", validator=one_of("train", "foundation"),
                        help="train on the run's training split, or on the procedural foundation corpus")
    foundation_clips: int = field(512, help="clips of the foundation corpus", validator=in_range(1))
    foundation_seconds: float = field(4.0, help="length of each foundation clip", validator=in_range(0.1))
    foundation_seed: int = field(1234, help="seed of the foundation corpus (clip i depends on (seed, i) only)")
    eval_clips: int = field(8, help="held-out synthetic clips for the quality report", validator=in_range(0))
    eval_seconds: float = field(2.0, help="length of each held-out clip", validator=in_range(0.1))
    log_every: int = field(50, help="steps between loss log lines", validator=in_range(1))
    seed: int = field(0, help="seed of crops, initialisation and synthetic clips")


# ---------------------------------------------------------------------------------------
# Spectral features and losses


def multiscale_mel_loss(
    estimate: torch.Tensor, target: torch.Tensor, sample_rate: int, scales: Sequence[int], n_mels: int
) -> torch.Tensor:
    """Mean over scales of ``L1(log mel) + L1(mel)`` between two ``(B, C, T)`` waveforms."""
    total = estimate.new_zeros(())
    for n_fft in scales:
        bands = min(n_mels, n_fft // 4)
        est = mel_spectrogram(estimate, sample_rate, n_fft, bands)
        ref = mel_spectrogram(target, sample_rate, n_fft, bands)
        total = total + F.l1_loss(torch.log(est.clamp_min(1e-5)), torch.log(ref.clamp_min(1e-5)))
        total = total + F.l1_loss(est, ref)
    return total / len(scales)


def spectral_convergence(
    estimate: torch.Tensor, target: torch.Tensor, scales: Sequence[int]
) -> torch.Tensor:
    """Mean over STFT sizes of ``||S_target - S_estimate||_F / ||S_target||_F`` (linear
    magnitudes; the multi-resolution STFT loss of Parallel WaveGAN). Being relative to the
    target's energy, it penalises missing events rather than rewarding silence, which pulls a
    codec out of the "output silence" minimum of sparse audio."""
    total = estimate.new_zeros(())
    flat_est = estimate.reshape(-1, estimate.shape[-1])
    flat_ref = target.reshape(-1, target.shape[-1])
    for n_fft in scales:
        window = torch.hann_window(n_fft, device=estimate.device, dtype=estimate.dtype)
        est = torch.stft(flat_est, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        ref = torch.stft(flat_ref, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        total = total + (ref - est).norm() / ref.norm().clamp_min(1e-8)
    return total / len(scales)


def mel_distance(estimate: torch.Tensor, target: torch.Tensor, sample_rate: int) -> float:
    """Mean absolute log10-mel difference (1024-point STFT, 64 bands); 0 = identical."""
    est = mel_spectrogram(estimate, sample_rate, 1024, 64)
    ref = mel_spectrogram(target, sample_rate, 1024, 64)
    return float((torch.log10(est.clamp_min(1e-5)) - torch.log10(ref.clamp_min(1e-5))).abs().mean())


#: spread ratio under which :func:`collapse_spread` calls a codec collapsed (healthy runs: ~1).
COLLAPSED_BELOW = 0.3


def spread(waves: Sequence[torch.Tensor], sample_rate: int) -> float:
    """Mean pairwise L1 distance between the log10-mel spectrograms of ``(C, T)`` clips (cropped
    to the shortest), per bin; 0 when every clip is the same."""
    length = min(w.shape[-1] for w in waves)
    mels = torch.stack([torch.log10(mel_spectrogram(w[None, :, :length].float(), sample_rate, 1024, 64)
                                    .clamp_min(1e-5)).flatten() for w in waves])  # (N, bins)
    return float(torch.cdist(mels, mels, p=1).sum() / (len(waves) * (len(waves) - 1)) / mels.shape[1])


def collapse_spread(decoded: Sequence[torch.Tensor], originals: Sequence[torch.Tensor], sample_rate: int) -> float:
    """The collapse detector: spread of the decoded clips relative to the originals' (needs >= 2).
    ~1: decoded clips differ as much as their originals; 0: every clip decodes alike (the
    collapse of docs/codec.md); under :data:`COLLAPSED_BELOW` counts as collapsed."""
    reference = spread(originals, sample_rate)
    return spread(decoded, sample_rate) / reference if reference > 0 else float("nan")


def si_snr(estimate: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SNR in dB per item of ``(..., T)`` waveforms (higher is better)."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    target = target - target.mean(-1, keepdim=True)
    scale = (estimate * target).sum(-1, keepdim=True) / (target.pow(2).sum(-1, keepdim=True) + eps)
    projection = scale * target
    noise = estimate - projection
    return 10 * torch.log10((projection.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


# ---------------------------------------------------------------------------------------
# Synthetic probe audio


def synthetic_clips(count: int, seconds: float, sample_rate: int, *, seed: int = 0) -> list[torch.Tensor]:
    """``count`` mono clips ``(1, T)`` of simple sound events: harmonic tones, chirps, band-limited
    noise bursts and impacts (decaying modes + click), 1-3 events each at random times."""
    gen = torch.Generator().manual_seed(seed)
    n = max(1, round(seconds * sample_rate))
    t = torch.arange(n, dtype=torch.float64) / sample_rate

    def rand(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=gen, dtype=torch.float64))

    def envelope(start: float, length: float, attack: float, release: float) -> torch.Tensor:
        local = t - start
        up = (local / attack).clamp(0, 1)
        down = ((start + length - t) / release).clamp(0, 1)
        return up * down * (local >= 0)

    def tone() -> torch.Tensor:
        f0, start = rand(110, 880), rand(0, seconds * 0.6)
        env = envelope(start, rand(0.2, seconds - start), 0.01, 0.05)
        parts = sum((0.6 ** k) * torch.sin(2 * math.pi * f0 * (k + 1) * t + rand(0, 6.28)) for k in range(4))
        return env * parts

    def chirp() -> torch.Tensor:
        f_a, f_b, start = rand(150, 3000), rand(150, 3000), rand(0, seconds * 0.5)
        length = rand(0.2, seconds - start)
        local = (t - start).clamp(0, length)
        phase = 2 * math.pi * (f_a * local + (f_b - f_a) * local.pow(2) / (2 * length))
        return envelope(start, length, 0.01, 0.05) * torch.sin(phase)

    def noise_burst() -> torch.Tensor:
        white = torch.randn(n, generator=gen, dtype=torch.float64)
        spectrum = torch.fft.rfft(white)
        freqs = torch.fft.rfftfreq(n, 1 / sample_rate).double()
        centre, width = rand(300, 5000), rand(200, 2000)
        spectrum = spectrum * torch.exp(-((freqs - centre) / width) ** 2)
        band = torch.fft.irfft(spectrum, n)
        band = band / band.abs().max().clamp_min(1e-9)
        start = rand(0, seconds * 0.7)
        return envelope(start, rand(0.1, 0.5), 0.005, 0.05) * band

    def impact() -> torch.Tensor:
        start = rand(0, seconds * 0.8)
        local = (t - start).clamp_min(0)
        on = (t >= start).double()
        modes = sum(torch.sin(2 * math.pi * rand(200, 4000) * local) * torch.exp(-local * rand(15, 60))
                    for _ in range(3))
        click = torch.randn(n, generator=gen, dtype=torch.float64) * torch.exp(-local * 400)
        return on * (modes / 3 + 0.5 * click)

    makers = (tone, chirp, noise_burst, impact)
    clips = []
    for _ in range(count):
        mix = torch.zeros(n, dtype=torch.float64)
        for _ in range(int(torch.randint(1, 4, (), generator=gen))):
            maker = makers[int(torch.randint(0, len(makers), (), generator=gen))]
            mix = mix + rand(0.2, 0.6) * maker()
        mix = mix / mix.abs().max().clamp_min(1e-9) * rand(0.3, 0.9)
        clips.append(mix.float()[None])
    return clips


# ---------------------------------------------------------------------------------------
# The stage


def _as_waveforms(items: Sequence[Any], sample_rate: int, channels: int) -> tuple[list[torch.Tensor], list[str]]:
    """Load/convert every item to ``(C, T)`` at the codec's rate; broken files are skipped and listed."""
    waves, skipped = [], []
    for item in items:
        try:
            if isinstance(item, (str, Path)):
                audio = load_audio(item)
            elif isinstance(item, Audio):
                audio = item
            elif isinstance(item, torch.Tensor):
                if item.dim() not in (1, 2):
                    raise InputError(f"training tensors must be (T,) or (C, T), got shape {tuple(item.shape)}")
                wav = item if item.dim() == 2 else item[None]
                audio = Audio(wav.float(), sample_rate)  # tensors are taken to be at the codec's rate
            else:
                raise InputError(f"cannot train on a {type(item).__name__}; give paths, Audio or (C, T) tensors")
            waves.append(audio.to(sample_rate, channels).waveform)
        except MediaError as exc:
            skipped.append(str(exc))
    if skipped:
        log.warning("codec training: skipped %d unreadable file(s), e.g. %s", len(skipped), skipped[0])
    return waves, skipped


def _random_batch(waves: list[torch.Tensor], batch: int, length: int, gen: torch.Generator,
                  *, min_energy: float = 0.0, tries: int = 8) -> torch.Tensor:
    """``(B, C, length)`` random crops; shorter clips are zero-padded at the end.

    With ``min_energy`` > 0 a crop whose RMS is below that fraction of its clip's RMS is
    redrawn (up to ``tries`` times), so sparse clips — short events in silence — still give
    the codec mostly sound to learn from.
    """
    crops = []
    for _ in range(batch):
        wav = waves[int(torch.randint(0, len(waves), (), generator=gen))]
        if wav.shape[-1] <= length:
            crops.append(F.pad(wav, (0, length - wav.shape[-1])))
            continue
        floor = min_energy * float(wav.pow(2).mean().sqrt())
        for _ in range(max(1, tries)):
            start = int(torch.randint(0, wav.shape[-1] - length + 1, (), generator=gen))
            crop = wav[:, start:start + length]
            if float(crop.pow(2).mean().sqrt()) >= floor:
                break
        crops.append(crop)
    return torch.stack(crops)


@torch.no_grad()
def evaluate_codec(codec: Any, clips: Sequence[torch.Tensor]) -> dict[str, float]:
    """Reconstruction quality through the real ``encode`` -> ``decode`` path, averaged over clips;
    ``spread`` is :func:`collapse_spread` (with 2+ clips; ``collapsed`` when under 0.3)."""
    if not clips:
        return {}
    mel, snr, decoded = [], [], []
    for clip in clips:
        wav = clip[None].to(codec.device)  # (1, C, T)
        recon = codec.decode(codec.encode(wav))[..., : wav.shape[-1]]
        mel.append(mel_distance(recon, wav, codec.sample_rate))
        snr.append(float(si_snr(recon, wav).mean()))
        decoded.append(recon[0].cpu())
    report = {"mel_distance": sum(mel) / len(mel), "si_snr_db": sum(snr) / len(snr), "clips": len(clips)}
    if len(clips) > 1:
        report["spread"] = ratio = collapse_spread(decoded, [c.cpu() for c in clips], codec.sample_rate)
        report["collapsed"] = bool(ratio < COLLAPSED_BELOW)
    return report


def train_codec(
    codec: Any,
    data: Sequence[Any],
    config: CodecTrainConfig,
    out_dir: str | Path,
    *,
    eval_data: Sequence[Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``codec`` on ``data`` (paths, :class:`Audio` or ``(C, T)`` tensors at the codec's rate).

    :param eval_data: held-out clips for the quality report; default: ``config.eval_clips``
        synthetic clips from a seed the training data does not use.
    :return: the report written to ``out_dir/report.json`` (loss curve, quality before and after,
        seconds, skipped files, where the checkpoint is).
    """
    closed_form = isinstance(codec, FittableDecoder)
    if not closed_form and not isinstance(codec, TrainableDecoder):
        raise PluginError(
            f"{type(codec).__name__} cannot be trained here: the train-codec stage trains codecs that implement "
            "c3llm.core.roles.TrainableDecoder (gradient training) or FittableDecoder (closed form)")
    out_dir = Path(out_dir)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    waves, skipped = _as_waveforms(data, codec.sample_rate, codec.channels)
    if not waves:
        raise InputError(f"codec training got no usable audio ({len(skipped)} item(s) skipped)")
    if eval_data is None:
        held_out = synthetic_clips(config.eval_clips, config.eval_seconds, codec.sample_rate, seed=config.seed + 7919)
        held_out = [c.expand(codec.channels, -1).contiguous() for c in held_out]
    else:
        held_out, _ = _as_waveforms(eval_data, codec.sample_rate, codec.channels)

    if closed_form:
        return _fit_codec(codec, waves, skipped, held_out, config, out_dir)

    codebook_rule = dict(
        codebook_decay=config.codebook_decay, kmeans_iters=config.kmeans_iters,
        dead_code_threshold=config.dead_code_threshold,
    )
    params = [p for p in codec.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=config.lr, betas=config.betas)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda step: config.lr_min_ratio + (1 - config.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * step / config.steps)),
    )
    length = max(1, round(config.segment_seconds * codec.sample_rate))
    device = params[0].device if params else torch.device("cpu")

    if config.init == "lsuv":  # data-dependent init on a probe batch (EncodecCodec: LSUV)
        codec.initialise(_random_batch(waves, max(8, config.batch_size), length, gen,
                                       min_energy=config.min_crop_energy).to(device))
    codec.eval()
    before = evaluate_codec(codec, held_out)
    codec.train()
    curve: list[dict[str, float]] = []
    running: dict[str, float] = {}
    started = time.perf_counter()
    bar = _progress_bar(config.steps) if progress else None
    for step in range(1, config.steps + 1):
        batch = _random_batch(waves, config.batch_size, length, gen, min_energy=config.min_crop_energy).to(device)  # (B, C, L)
        quantizers = None
        if config.quantizer_dropout and float(torch.rand((), generator=gen)) < config.quantizer_dropout:
            total = codec.total_codebooks
            quantizers = int(torch.randint(1, total + 1, (1,), generator=gen))
        recon, commitment = codec.training_forward(batch, **codebook_rule, num_quantizers=quantizers)
        loss_time = F.l1_loss(recon, batch)
        loss_mel = multiscale_mel_loss(recon, batch, codec.sample_rate, config.mel_scales, config.n_mels)
        loss_spectral = spectral_convergence(recon, batch, config.mel_scales) if config.weight_spectral else recon.new_zeros(())
        loss = (config.weight_time * loss_time + config.weight_mel * loss_mel + config.weight_spectral * loss_spectral
                + config.weight_commit * commitment)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimiser.step()
        schedule.step()
        parts = {"loss": loss.item(), "time_l1": loss_time.item(), "mel": loss_mel.item(),
                 "spectral": loss_spectral.item(), "commit": commitment.item()}
        for key, value in parts.items():
            running[key] = running.get(key, 0.0) + value
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.3f}")
        if step % config.log_every == 0 or step == config.steps:
            count = config.log_every if step % config.log_every == 0 else step % config.log_every
            point = {"step": step, **{k: v / count for k, v in running.items()}}
            curve.append(point)
            running = {}
            log.info("codec step %d/%d loss %.4f (mel %.4f, l1 %.4f, commit %.4f)", step, config.steps,
                     point["loss"], point["mel"], point["time_l1"], point["commit"])
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    if config.refit_codebooks:
        log.info("codec: refitting the codebooks by k-means over %d training clips", len(waves))
        codec.refit_codebooks([w.to(device) for w in waves])
    codec.eval()
    after = evaluate_codec(codec, held_out)
    log.info("codec held-out quality: mel distance %.3f, SI-SNR %.2f dB, spread %.2f", after.get("mel_distance", float("nan")),
             after.get("si_snr_db", float("nan")), after.get("spread", float("nan")))

    return _save_trained(codec, config, out_dir, {
        "steps": config.steps, "train_seconds": seconds, "train_clips": len(waves), "skipped": skipped,
        "curve": curve, "quality_before": before, "quality_after": after,
    })


def _fit_codec(codec: Any, waves: list[torch.Tensor], skipped: list[str], held_out: Sequence[torch.Tensor],
               config: CodecTrainConfig, out_dir: Path) -> dict[str, Any]:
    """Learn a closed-form codec (``codec.fit``), report its quality before and after, save it."""
    codec.eval()
    before = evaluate_codec(codec, held_out)
    log.info("codec: fitting %s on %d clips", type(codec).__name__, len(waves))
    started = time.perf_counter()
    fit = codec.fit(waves, iters=config.kmeans_iters)
    seconds = time.perf_counter() - started
    after = evaluate_codec(codec, held_out)
    log.info("codec held-out quality: mel distance %.3f (before fitting %.3f)",
             after.get("mel_distance", float("nan")), before.get("mel_distance", float("nan")))
    return _save_trained(codec, config, out_dir, {
        "method": "fit", "steps": 0, "train_seconds": seconds, "train_clips": len(waves), "skipped": skipped,
        "fit": fit, "curve": [], "quality_before": before, "quality_after": after,
    })


def _save_trained(codec: Any, config: CodecTrainConfig, out_dir: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Write the codec (its ``save_pretrained``), ``train_config.json`` and ``report.json``."""
    codec.save_pretrained(out_dir)
    (out_dir / "train_config.json").write_text(json.dumps(attrs.asdict(config), indent=2), encoding="utf-8")
    report = {**report, "checkpoint": str(out_dir)}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def _progress_bar(total: int) -> Any:
    from c3llm.core.progress import progress_bar

    return progress_bar(total, "codec", unit="step")
