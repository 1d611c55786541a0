"""EnCodec as the pipeline's audio codec (plugin ``encodec``), built on transformers' ``EncodecModel``.

Two uses:

- **pretrained**: Meta's causal 24 kHz model (``preset = "encodec_24khz"``, 75 Hz, 32 codebooks
  of 1024; the paper uses the first 2 = 1.5 kbps), read from an HF-format directory, the
  official ``encodec`` ``.th`` file, or a hub id when online;
- **trainable**: small SEANet + RVQ configs (``preset = "tiny"``) trained here with
  :func:`c3llm.app.training.codec.train_codec`, saved as an HF-format directory that
  ``pretrained`` points at.

The ``encodec`` PyPI package is not used: it imports torchaudio, which has no build for the
torch in use. transformers' model has the same modules and weights under other names
(see :mod:`c3llm.plugins.decoders.encodec_checkpoint`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import torch

from c3llm.core.config import field, in_range, one_of
from c3llm.core.errors import CheckpointError, ConfigError, InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.roles import TrainableDecoder
from c3llm.core.roles.base import load_strict

log = logging.getLogger(__name__)

#: Architecture of each preset (keys are :class:`EncodecCodecConfig` fields).
PRESETS: dict[str, dict[str, Any]] = {
    # facebook/encodec_24khz == encodec.EncodecModel.encodec_model_24khz()
    "encodec_24khz": dict(
        sample_rate=24_000, channels=1, n_filters=32, hidden_size=128, upsampling_ratios=(8, 5, 4, 2),
        codebook_size=1024, total_codebooks=32, num_residual_layers=1, num_lstm_layers=2, causal=True,
        norm="weight_norm",
    ),
    # CPU-sized codec for the embedded demo: 16 kHz, hop 640 -> 25 frames/s, ~0.73 M parameters
    "tiny": dict(
        sample_rate=16_000, channels=1, n_filters=8, hidden_size=64, upsampling_ratios=(8, 5, 4, 4),
        codebook_size=1024, total_codebooks=2, num_residual_layers=1, num_lstm_layers=1, causal=True,
        norm="weight_norm",
    ),
}
ARCHITECTURE_KEYS = tuple(PRESETS["tiny"])


def _power_of_two(instance: Any, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and (value < 2 or value & (value - 1)):
        raise ValueError(f"{attribute.name} must be a power of two >= 2 (EnCodec packs codes in bits), got {value}")


def _ratios(instance: Any, attribute: attrs.Attribute, value: tuple[int, ...] | None) -> None:
    if value is not None and (not value or any(r < 1 for r in value)):
        raise ValueError(f"{attribute.name} must be a non-empty list of positive integers, got {list(value)}")


@attrs.frozen(kw_only=True)
class EncodecCodecConfig:
    """EnCodec codec. Architecture keys left unset take the ``preset``'s value."""

    preset: Literal["tiny", "encodec_24khz"] = field(
        "tiny", help="architecture preset: 'tiny' (trainable, 16 kHz, 25 Hz) or 'encodec_24khz' (Meta's model)",
        validator=one_of("tiny", "encodec_24khz"),
    )
    pretrained: str | None = field(
        None,
        help="weights: an HF-format EnCodec directory (config.json + model.safetensors, also what "
        "train_codec writes), an official encodec .th file, or a hub id such as "
        "'facebook/encodec_24khz' (online only). Relative paths are taken from the working directory.",
    )
    num_codebooks: int = field(
        2, help="codebooks used by encode/decode (Q); 2 = 1.5 kbps for the 24 kHz model", validator=in_range(1)
    )
    sample_rate: int | None = field(None, help="Hz", validator=in_range(1000, 192_000))
    channels: int | None = field(None, help="audio channels (1 or 2)", validator=in_range(1, 2))
    n_filters: int | None = field(None, help="SEANet base width", validator=in_range(1))
    hidden_size: int | None = field(None, help="latent (codebook vector) dimension", validator=in_range(1))
    upsampling_ratios: tuple[int, ...] | None = field(
        None, help="decoder strides, e.g. [8, 5, 4, 4]; their product is the hop length", validator=_ratios
    )
    codebook_size: int | None = field(
        None, help="entries per codebook (power of two, <= 1024)", validator=[in_range(2, 1024), _power_of_two]
    )
    total_codebooks: int | None = field(None, help="codebooks the model holds (>= num_codebooks)", validator=in_range(1))
    num_residual_layers: int | None = field(None, help="residual blocks per SEANet stage", validator=in_range(1))
    num_lstm_layers: int | None = field(None, help="LSTM layers after the encoder / before the decoder", validator=in_range(1))
    causal: bool | None = field(None, help="causal convolutions (streamable)")
    norm: Literal["weight_norm", "time_group_norm"] | None = field(
        None, help="'weight_norm' or 'time_group_norm'",
        validator=attrs.validators.optional(one_of("weight_norm", "time_group_norm")),
    )

    def __attrs_post_init__(self) -> None:
        arch = self.architecture()
        if self.num_codebooks > arch["total_codebooks"]:
            raise ValueError(
                f"num_codebooks = {self.num_codebooks} exceeds the model's {arch['total_codebooks']} "
                f"codebooks (total_codebooks); lower num_codebooks"
            )
        if arch["norm"] == "time_group_norm" and arch["causal"]:
            raise ValueError("norm = 'time_group_norm' needs causal = false (GroupNorm looks at the whole clip)")

    def architecture(self) -> dict[str, Any]:
        """The full architecture: the preset overridden by every key that is set."""
        arch = dict(PRESETS[self.preset])
        for key in ARCHITECTURE_KEYS:
            value = getattr(self, key)
            if value is not None:
                arch[key] = tuple(value) if key == "upsampling_ratios" else value
        return arch


def hf_config(arch: dict[str, Any]) -> Any:
    """transformers' ``EncodecConfig`` for an :meth:`EncodecCodecConfig.architecture`."""
    from transformers import EncodecConfig

    hop = math.prod(arch["upsampling_ratios"])
    frame_rate = math.ceil(arch["sample_rate"] / hop)
    bits = int(math.log2(arch["codebook_size"]))
    total = arch["total_codebooks"]
    # EncodecConfig derives its codebook count from the largest bandwidth (kbps)
    counts = sorted({q for q in (2 ** i for i in range(11)) if q <= total} | {total})
    bandwidths = [q * frame_rate * bits / 1000 for q in counts]
    config = EncodecConfig(
        target_bandwidths=bandwidths, sampling_rate=arch["sample_rate"], audio_channels=arch["channels"],
        normalize=False, hidden_size=arch["hidden_size"], num_filters=arch["n_filters"],
        num_residual_layers=arch["num_residual_layers"], upsampling_ratios=list(arch["upsampling_ratios"]),
        norm_type=arch["norm"], use_causal_conv=arch["causal"], num_lstm_layers=arch["num_lstm_layers"],
        codebook_size=arch["codebook_size"],
    )
    if config.num_quantizers != total:
        raise ConfigError(f"cannot express {total} codebooks as an EnCodec bandwidth at {frame_rate} Hz")
    return config


def architecture_of(hf: Any) -> dict[str, Any]:
    """The :data:`ARCHITECTURE_KEYS` view of a transformers ``EncodecConfig``."""
    return dict(
        sample_rate=hf.sampling_rate, channels=hf.audio_channels, n_filters=hf.num_filters,
        hidden_size=hf.hidden_size, upsampling_ratios=tuple(hf.upsampling_ratios),
        codebook_size=hf.codebook_size, total_codebooks=hf.num_quantizers,
        num_residual_layers=hf.num_residual_layers, num_lstm_layers=hf.num_lstm_layers,
        causal=hf.use_causal_conv, norm=hf.norm_type,
    )


def config_for_checkpoint(path: str | Path, **overrides: Any) -> EncodecCodecConfig:
    """A config whose architecture matches the HF-format directory ``path`` (reads its config.json).

    Handy for codecs trained with other settings than a preset:
    ``EncodecCodec(config_for_checkpoint("runs/codec"))``.
    """
    path = Path(path)
    file = path / "config.json"
    if not file.is_file():
        raise CheckpointError(f"{path} has no config.json; expected an HF-format EnCodec directory")
    from transformers import EncodecConfig

    arch = architecture_of(EncodecConfig.from_dict(json.loads(file.read_text(encoding="utf-8"))))
    return EncodecCodecConfig(**{"pretrained": str(path), **arch, **overrides})


class EncodecCodec(TrainableDecoder):
    """EnCodec (SEANet encoder/decoder + residual VQ) behind the :class:`TrainableDecoder` contract.

    ``encode``: ``(B, C, T)`` float -> ``(B, Q, S)`` long with ``S = ceil(T / hop)``;
    ``decode``: ``(B, Q', S)`` -> ``(B, C, S * hop)``.
    """

    def __init__(self, config: EncodecCodecConfig):
        super().__init__()
        from transformers import EncodecModel

        self.config = config
        self.arch = config.architecture()
        self.model = EncodecModel(hf_config(self.arch))
        if config.pretrained is None:
            self.reset_codebooks()
        self.hop_length = math.prod(self.arch["upsampling_ratios"])
        self.sample_rate = self.arch["sample_rate"]
        self.channels = self.arch["channels"]
        self.frame_rate = self.sample_rate / self.hop_length
        self.num_codebooks = config.num_codebooks
        self.cardinality = self.arch["codebook_size"]

    @property
    def total_codebooks(self) -> int:
        return int(self.arch["total_codebooks"])

    # -- weights ----------------------------------------------------------------------------

    def reset_codebooks(self) -> None:
        """Mark every codebook uninitialised: training k-means-initialises it on its first batch."""
        for layer in self.model.quantizer.layers:
            layer.codebook.inited.fill_(0.0)

    def load_pretrained(self) -> None:
        """Load ``config.pretrained`` (HF directory, official ``.th`` file or hub id)."""
        from c3llm.plugins.decoders import encodec_checkpoint as ckpt

        source = self.config.pretrained
        if source is None:
            return
        path = Path(source).expanduser()
        if path.is_dir():
            self._adopt_hf(ckpt.load_hf_model(str(path), hub=False), str(path))
        elif path.is_file() and path.suffix in ckpt.OFFICIAL_SUFFIXES:
            load_strict(self.model, ckpt.read_official_checkpoint(path), owner=f"EnCodec {self._arch_text()}")
        elif path.is_file():
            raise CheckpointError(
                f"pretrained = {source!r} is a file but not an official EnCodec checkpoint "
                f"({', '.join(ckpt.OFFICIAL_SUFFIXES)}); for HF-format weights give the directory"
            )
        elif ckpt.looks_like_hub_id(source):
            self._adopt_hf(ckpt.load_hf_model(source, hub=True), source)
        else:
            raise CheckpointError(
                f"pretrained = {source!r} does not exist. Give an HF-format EnCodec directory, an "
                f"official .th file, or a hub id such as 'facebook/encodec_24khz'"
            )
        self.model.eval()
        self.mark_loaded()  # a saved pipeline records `pretrained` instead of copying the weights
        log.info("loaded EnCodec weights from %s (%s)", source, self._arch_text())

    def _adopt_hf(self, loaded: Any, source: str) -> None:
        theirs = architecture_of(loaded.config)
        diff = {k: (v, theirs[k]) for k, v in self.arch.items() if theirs[k] != v}
        if diff:
            shown = "; ".join(f"{k}: config {a!r} vs checkpoint {b!r}" for k, (a, b) in diff.items())
            raise CheckpointError(
                f"EnCodec weights at {source} do not match the configured architecture ({shown}). "
                f"Set those keys (or the matching preset), or build the config with "
                f"c3llm.plugins.decoders.encodec.config_for_checkpoint({source!r})"
            )
        if loaded.config.normalize:
            raise CheckpointError(
                f"{source} normalises audio per chunk (like the 48 kHz model); its codes need a side "
                f"scale the Decoder contract does not carry. Use a model with normalize = false"
            )
        load_strict(self.model, loaded.state_dict(), owner=f"EnCodec {self._arch_text()}")

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write an HF-format directory (config.json + model.safetensors) ``pretrained`` can name."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(directory), safe_serialization=True)
        return directory

    def _arch_text(self) -> str:
        a = self.arch
        return (f"{a['sample_rate']} Hz, hop {math.prod(a['upsampling_ratios'])}, {a['total_codebooks']}x"
                f"{a['codebook_size']} codes, dim {a['hidden_size']}")

    # -- the Decoder contract -----------------------------------------------------------------

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` float waveform at ``sample_rate`` -> ``(B, Q, S)`` long codes."""
        self.check_waveform(wav)
        wav = wav.to(self._dtype())
        embeddings = self.model.encoder(wav)  # (B, D, S)
        residual = embeddings
        codes = []
        for layer in self.model.quantizer.layers[: self.num_codebooks]:
            index = layer.encode(residual)  # (B, S)
            residual = residual - layer.decode(index)
            codes.append(index)
        return torch.stack(codes, dim=1)  # (B, Q, S)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, Q', S)`` long codes (first ``Q'`` codebooks) -> ``(B, C, S * hop)`` waveform."""
        self.check_codes(codes)
        embeddings = self.embed_codes(codes)  # (B, D, S)
        return self.model.decoder(embeddings)  # (B, C, S * hop)

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the code vectors of each codebook: ``(B, Q', S)`` -> ``(B, D, S)``."""
        layers = self.model.quantizer.layers
        return sum(layers[q].decode(codes[:, q]) for q in range(codes.shape[1]))

    def training_forward(
        self, wav: torch.Tensor, *, codebook_decay: float = 0.99, kmeans_iters: int = 50,
        dead_code_threshold: float = 0.02, num_quantizers: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable reconstruction through the first ``num_quantizers`` codebooks
        (default: all ``total_codebooks``). Training with a random count each step (EnCodec's
        bandwidth sampling, SoundStream's quantizer dropout) makes codebook 1 carry most of
        the signal on its own, which is what the LLM predicts.

        Codebooks learn by k-means init + EMA (no gradient) while the module is in training
        mode; encoder and decoder get gradients (straight-through quantisation).

        :param wav: ``(B, C, T)`` float.
        :return: reconstruction ``(B, C, T)`` and the commitment loss (scalar).
        """
        from c3llm.plugins.decoders.encodec_vq import (
            CodebookLearning,
            residual_quantize,
        )

        self.check_waveform(wav)
        rule = CodebookLearning(decay=codebook_decay, kmeans_iters=kmeans_iters, dead_code_threshold=dead_code_threshold)
        embeddings = self.model.encoder(wav)  # (B, D, S)
        layers = self.model.quantizer.layers
        if num_quantizers is not None:
            if not 1 <= num_quantizers <= len(layers):
                raise InputError(f"num_quantizers must be in [1, {len(layers)}], got {num_quantizers}")
            layers = layers[:num_quantizers]
        frames = residual_quantize(layers, embeddings, rule, learn=self.training)
        audio = self.model.decoder(frames.quantized)[..., : wav.shape[-1]]  # (B, C, T)
        return audio, frames.commitment

    @torch.no_grad()
    def initialise(self, batch: torch.Tensor) -> None:
        """LSUV init of the SEANet convs on ``batch`` ``(B, C, T)`` (:mod:`encodec_init`: kaiming
        ``v``/``g``, each conv rescaled to unit output std, the output to the batch's std).
        Without it the tiny codec's encoder starts near-constant and training collapses.
        Skipped when the codec loads pretrained weights."""
        from c3llm.plugins.decoders.encodec_init import lsuv_encodec_

        if self.config.pretrained is not None:
            log.info("EnCodec initialise: skipped, weights come from %s", self.config.pretrained)
            return
        self.check_waveform(batch)
        stats = lsuv_encodec_(self.model, batch.to(self._dtype()))
        log.info("EnCodec LSUV init: latent std %.3f, output/input std %.3f", stats["latent_std"], stats["output_std_ratio"])

    @torch.no_grad()
    def refit_codebooks(self, waves: Sequence[torch.Tensor], *, iters: int = 25, max_frames: int = 60_000) -> None:
        """Refit every codebook by k-means on the trained encoder's frames of ``waves``
        (each ``(C, T)``): codebook 1 on the frames, codebook k on what codebooks < k leave.

        EMA codebooks trained on a few dozen frames per step (all a CPU affords) can settle
        with codebook 1 on the frames' common offset and the signal in the residual; a refit
        over many frames spreads codebook 1 over the signal again, which the LLM predicts.
        """
        from c3llm.plugins.decoders.encodec_vq import kmeans, nearest

        was_training = self.training
        self.eval()
        frames = torch.cat([self.model.encoder(w[None]).squeeze(0).t() for w in waves])  # (N, D)
        if frames.shape[0] > max_frames:
            frames = frames[torch.randperm(frames.shape[0], generator=torch.Generator().manual_seed(0))[:max_frames]]
        residual = frames
        for layer in self.model.quantizer.layers:
            codebook = layer.codebook
            centres, sizes = kmeans(residual, codebook.embed.shape[0], iters)
            codebook.embed.copy_(centres)
            codebook.embed_avg.copy_(centres * sizes[:, None])
            codebook.cluster_size.copy_(sizes)
            codebook.inited.fill_(1.0)
            residual = residual - centres[nearest(residual, centres)]
        self.train(was_training)

    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


@hookimpl
def register_decoders(register):
    register(
        "encodec", EncodecCodec, EncodecCodecConfig,
        description="EnCodec neural codec (transformers EncodecModel): Meta's 24 kHz weights or a small trainable config",
    )
