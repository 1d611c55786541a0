"""``mel-rvq``: a neural residual-VQ codec in the log-mel domain, trained on broad audio.

Encoder (convolutions over stacked log-mel code frames) -> residual VQ (EMA codebooks,
k-means init, dead-code re-seeding, quantizer dropout) -> decoder (convolutions back to
log-mel) -> Griffin-Lim. Codebook 2 quantises what codebook 1 leaves of the *learned* latent
(RVQ, as in EnCodec), and quantizer dropout trains the decoder on codebook 1 alone too, so
the LM's codebook-1 tokens decode on their own and the NAR refiner adds detail.

Why it exists (docs/codec.md): a time-domain EnCodec trained from scratch in the few CPU
minutes the embedded default has stays far from usable (the synthetic reference classifier
named the source of 22-28 % of its resynthesised test clips); learning in the log-mel domain
is ~100x cheaper per step and reaches 0.85 on the same clips after training only on the
foundation corpus (never on the task world), where ``melvq``'s k-means codebooks must be
fitted on the world itself. Training runs inside :meth:`fit` (the ``train-codec`` stage calls
it, as for ``melvq``); its schedule is the ``fit_*`` keys.
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
from torch import nn

from c3llm.core.config import field, in_range
from c3llm.core.errors import CheckpointError, InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.roles import FittableDecoder
from c3llm.plugins.decoders.encodec_vq import (
    CodebookLearning,
    nearest,
    residual_quantize,
)
from c3llm.plugins.decoders.mel_frames import MelFrames

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "c3llm-mel-rvq"
#: Config keys that only matter at decode time or for the training schedule of fit().
DECODING = ("pretrained", "griffin_lim_iters", "griffin_lim_momentum", "seed")
TRAINING = ("fit_steps", "fit_batch", "fit_crop_frames", "fit_lr", "quantizer_dropout", "commitment", "linear_loss",
            "codebook_decay", "dead_code_threshold")


@attrs.frozen(kw_only=True)
class MelRVQCodecConfig:
    """Neural mel RVQ codec. Code rate: ``sample_rate / (stft_hop * frames_per_code)`` frames/s."""

    pretrained: str | None = field(None, help="directory written by save_pretrained (train-codec's codec/ folder)")
    sample_rate: int = field(16_000, help="Hz", validator=in_range(1000, 192_000))
    n_fft: int = field(640, help="STFT size", validator=in_range(16))
    stft_hop: int = field(160, help="STFT hop in samples", validator=in_range(1))
    frames_per_code: int = field(4, help="STFT frames stacked into one code frame", validator=in_range(1))
    n_mels: int = field(64, help="mel bands per STFT frame", validator=in_range(4))
    log_floor: float = field(1e-5, help="added to mel magnitudes before the log", validator=in_range(0.0, low_open=True))
    width: int = field(128, help="channels of the encoder and decoder convolutions", validator=in_range(8))
    latent_dim: int = field(64, help="dimension of the quantised latent (code vectors)", validator=in_range(2))
    num_res_blocks: int = field(3, help="dilated residual blocks in the encoder and in the decoder", validator=in_range(0, 8))
    codebook_size: int = field(1024, help="entries per codebook (K)", validator=in_range(2))
    num_codebooks: int = field(2, help="residual codebooks (Q)", validator=in_range(1, 16))
    griffin_lim_iters: int = field(32, help="Griffin-Lim iterations per decode", validator=in_range(1))
    griffin_lim_momentum: float = field(0.99, help="fast Griffin-Lim momentum", validator=in_range(0.0, 1.0))
    seed: int = field(0, help="seed of the initial phase (decode is deterministic), init and training batches")
    fit_steps: int = field(2500, help="training steps run by fit (train-codec)", validator=in_range(1))
    fit_batch: int = field(32, help="crops per training step", validator=in_range(1))
    fit_crop_frames: int = field(32, help="code frames per training crop", validator=in_range(1))
    fit_lr: float = field(2e-3, help="AdamW peak learning rate (warm-up 100 steps, cosine to 10 %)",
                          validator=in_range(0.0, low_open=True))
    quantizer_dropout: float = field(0.5, help="share of steps that train with codebook 1 only", validator=in_range(0.0, 1.0))
    commitment: float = field(0.25, help="weight of the commitment loss", validator=in_range(0.0))
    linear_loss: float = field(1.0, help="weight of the relative L1 loss on linear mel magnitudes (loud parts)",
                               validator=in_range(0.0))
    codebook_decay: float = field(0.99, help="EMA decay of the codebooks", validator=in_range(0.0, 1.0))
    dead_code_threshold: float = field(0.02, help="EMA count under which an entry is re-seeded", validator=in_range(0.0))

    def __attrs_post_init__(self) -> None:
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(f"n_mels = {self.n_mels} exceeds the {self.n_fft // 2 + 1} STFT bins of n_fft = {self.n_fft}")

    def architecture(self) -> dict[str, Any]:
        """The keys the weights depend on."""
        return {k: v for k, v in attrs.asdict(self).items() if k not in DECODING + TRAINING}

    def training(self) -> dict[str, Any]:
        """How :meth:`MelRVQCodec.fit` trains (recorded beside the weights, not checked on load)."""
        return {k: getattr(self, k) for k in TRAINING}


class _ResBlock(nn.Module):
    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, W, S)
        return x + self.mix(F.gelu(self.conv(F.gelu(x))))


class _EMACodebook(nn.Module):
    """The buffers :mod:`encodec_vq`'s EMA rule updates (the layout of transformers' EnCodec)."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("inited", torch.zeros(()))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("embed_avg", torch.zeros(size, dim))


class _Quantizer(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        self.codebook = _EMACodebook(size, dim)


def _stack(inp: int, width: int, out: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(inp, width, 3, padding=1), *[_ResBlock(width, 2 ** i) for i in range(blocks)],
                         nn.GELU(), nn.Conv1d(width, out, 3, padding=1))


class MelRVQCodec(FittableDecoder):
    """``encode``: ``(B, 1, T)`` -> ``(B, Q, ceil(T / hop_length))``; ``decode``: ``(B, Q', S)`` ->
    ``(B, 1, S * hop_length)``."""

    def __init__(self, config: MelRVQCodecConfig):
        super().__init__()
        self.config = config
        self.sample_rate, self.channels = config.sample_rate, 1
        self.frames = MelFrames(
            sample_rate=config.sample_rate, n_fft=config.n_fft, stft_hop=config.stft_hop,
            frames_per_code=config.frames_per_code, n_mels=config.n_mels, log_floor=config.log_floor,
            griffin_lim_iters=config.griffin_lim_iters, griffin_lim_momentum=config.griffin_lim_momentum, seed=config.seed)
        self.hop_length = self.frames.hop_length
        self.frame_rate = config.sample_rate / self.hop_length
        self.num_codebooks, self.cardinality = config.num_codebooks, config.codebook_size
        dim = self.frames.dim
        torch.manual_seed(config.seed)
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        self.encoder = _stack(dim, config.width, config.latent_dim, config.num_res_blocks)
        self.decoder = _stack(config.latent_dim, config.width, dim, config.num_res_blocks)
        self.quantizers = nn.ModuleList(_Quantizer(config.codebook_size, config.latent_dim)
                                        for _ in range(config.num_codebooks))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    # -- the signal path ---------------------------------------------------------------------

    def latent(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, S, D)`` log-mel code frames -> ``(B, L, S)`` latent."""
        return self.encoder(((features - self.feature_mean) / self.feature_std).transpose(1, 2))

    def reconstruct(self, latent: torch.Tensor) -> torch.Tensor:
        """``(B, L, S)`` (quantised) latent -> ``(B, S, D)`` log-mel code frames."""
        return self.decoder(latent).transpose(1, 2) * self.feature_std + self.feature_mean

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` float waveform at ``sample_rate`` -> ``(B, Q, S)`` long codes."""
        self.check_waveform(wav)
        self._warn_if_unfitted()
        residual = self.latent(self.frames.features(wav.to(self.feature_mean.dtype))).transpose(1, 2)  # (B, S, L)
        codes = []
        for quantizer in self.quantizers:
            index = nearest(residual, quantizer.codebook.embed)  # (B, S)
            residual = residual - quantizer.codebook.embed[index]
            codes.append(index)
        return torch.stack(codes, dim=1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, Q', S)`` codes (the first ``Q'`` codebooks) -> ``(B, 1, S * hop_length)`` waveform."""
        self.check_codes(codes)
        latent = sum(self.quantizers[q].codebook.embed[codes[:, q]] for q in range(codes.shape[1]))  # (B, S, L)
        return self.frames.synthesize(self.reconstruct(latent.transpose(1, 2)))

    # -- learning ----------------------------------------------------------------------------

    def fit(self, waves: Sequence[torch.Tensor], *, iters: int = 50) -> dict[str, Any]:
        """Train encoder, codebooks and decoder on ``waves`` (each ``(1, T)``) for ``fit_steps``
        steps of random crops: L1 on normalised log-mel + relative L1 on linear mel + commitment.

        :param iters: k-means iterations of the codebooks' first-batch initialisation.
        :return: the loss curve (step 1, then every 100 steps) and the time taken.
        """
        from c3llm.core.progress import progress_bar

        cfg = self.config
        clips = [self.frames.features(w[None].to(self.feature_mean.dtype))[0] for w in waves if w.shape[-1] > 0]
        clips = [c for c in clips if c.shape[0] >= cfg.fit_crop_frames]  # (S_i, D) each
        if not clips:
            raise InputError(f"mel-rvq.fit needs clips of at least {cfg.fit_crop_frames} code frames "
                             f"({cfg.fit_crop_frames * self.hop_length / self.sample_rate:.2f} s); got none")
        frames = torch.cat(clips)
        if not torch.isfinite(frames).all():
            raise InputError("mel-rvq.fit got audio with NaN or infinite samples")
        self.feature_mean.copy_(frames.mean(0))
        self.feature_std.copy_(frames.std(0).clamp_min(1e-3))
        rule = CodebookLearning(decay=cfg.codebook_decay, kmeans_iters=iters, dead_code_threshold=cfg.dead_code_threshold)
        gen = torch.Generator().manual_seed(cfg.seed)
        params = [p for p in self.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(params, lr=cfg.fit_lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / 100) * (
            0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / cfg.fit_steps))))
        self.train()
        curve, started = [], time.perf_counter()
        with progress_bar(cfg.fit_steps, "mel-rvq codec", unit="step") as bar:
            for step in range(1, cfg.fit_steps + 1):
                batch = self._crops(clips, gen)  # (B, S, D)
                dropout = step > 1 and float(torch.rand((), generator=gen)) < cfg.quantizer_dropout  # step 1 inits all
                books = 1 if dropout else len(self.quantizers)
                quantized = residual_quantize(self.quantizers[:books], self.latent(batch), rule, learn=True)
                out = self.reconstruct(quantized.quantized)
                log_l1 = ((out - batch) / self.feature_std).abs().mean()
                linear = (out.exp() - batch.exp()).abs().mean() / batch.exp().mean()
                loss = log_l1 + cfg.linear_loss * linear + cfg.commitment * quantized.commitment
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimiser.step()
                schedule.step()
                bar.update()
                if step == 1 or step % 100 == 0 or step == cfg.fit_steps:
                    curve.append({"step": step, "log_l1": float(log_l1.detach()), "linear": float(linear.detach()),
                                  "commitment": float(quantized.commitment.detach())})
        self.eval()
        self.fitted.fill_(True)
        seconds = time.perf_counter() - started
        log.info("mel-rvq: trained %d steps on %d clips in %.0f s (last log-mel L1 %.3f)", cfg.fit_steps, len(clips),
                 seconds, curve[-1]["log_l1"])
        return {"steps": cfg.fit_steps, "clips": len(clips), "seconds": seconds, "curve": curve}

    def _crops(self, clips: list[torch.Tensor], gen: torch.Generator) -> torch.Tensor:
        """``fit_batch`` random crops of ``fit_crop_frames`` code frames: ``(B, S, D)``."""
        length = self.config.fit_crop_frames
        picks = torch.randint(len(clips), (self.config.fit_batch,), generator=gen).tolist()
        out = []
        for i in picks:
            start = int(torch.randint(clips[i].shape[0] - length + 1, (), generator=gen))
            out.append(clips[i][start:start + length])
        return torch.stack(out)

    def _warn_if_unfitted(self) -> None:
        if not bool(self.fitted) and not getattr(self, "_warned", False):
            log.warning("mel-rvq codec is untrained: run train-codec (or codec.fit) or set pretrained")
            self._warned = True

    # -- weights -------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` (architecture + schedule) and ``model.safetensors``."""
        from c3llm.core.checkpoint import save_tensors

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        record = {"format": FORMAT, **self.config.architecture(), "training": self.config.training()}
        (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        save_tensors(directory / WEIGHTS_FILE, {k: v.detach() for k, v in self.state_dict().items()})
        return directory

    def load_pretrained(self) -> None:
        """Load ``config.pretrained``; refuse a checkpoint of another architecture."""
        from c3llm.core.checkpoint import load_tensors

        if self.config.pretrained is None:
            return
        path = Path(self.config.pretrained).expanduser()
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise CheckpointError(f"pretrained = {str(path)!r} is not a mel-rvq codec directory (needs {CONFIG_FILE} "
                                  f"and {WEIGHTS_FILE}, as written by train-codec or save_pretrained)")
        record = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        if record.pop("format", None) != FORMAT:
            raise CheckpointError(f"{path / CONFIG_FILE} is not a mel-rvq codec config")
        record.pop("training", None)
        ours = self.config.architecture()
        wrong = [f"{k}: config {ours.get(k)!r} vs checkpoint {v!r}" for k, v in record.items() if ours.get(k) != v]
        if wrong:
            raise CheckpointError(f"mel-rvq weights at {path} do not match the configured codec ({'; '.join(wrong)}); "
                                  "set those keys")
        self.load_checkpoint_state_dict(load_tensors(path / WEIGHTS_FILE))
        log.info("loaded mel-rvq codec from %s", path)


@hookimpl
def register_decoders(register):
    register(
        "mel-rvq", MelRVQCodec, MelRVQCodecConfig,
        description="neural RVQ codec in the log-mel domain (conv encoder/decoder, EMA RVQ, Griffin-Lim); "
                    "trains in minutes on a CPU",
    )
