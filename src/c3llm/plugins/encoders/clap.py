"""Frozen CLAP audio encoder (HTSAT + projection): local frame features fused with the global
clip embedding, the audio condition of the audio-to-text task.

Built on transformers' ``ClapAudioModelWithProjection`` and ``ClapFeatureExtractor``. Weights
come from a local transformers-format directory (``ClapModel`` or audio-only), an original
LAION-CLAP ``.pt`` checkpoint (keys renamed by :mod:`.clap_laion_keys`), or a hub id when
online. The ``laion-clap`` package itself is never imported: it downloads three text
tokenizers from the hub at import time and pins ``numpy<2``.

Output (the paper fuses local and global CLAP features; this is how):

- audio is resampled to the extractor's rate (48 kHz), downmixed, and cut into consecutive
  windows of the extractor's ``max_length_s`` (10 s); each window is repeat-padded exactly as
  CLAP was trained, so no random crop is ever taken and features are deterministic;
- *local*: HTSAT's last hidden state ``(C, F', T')`` averaged over frequency gives ``T'``
  frames per window (32 for HTSAT); only frames covering real audio are kept, the clip's frames
  are concatenated over windows and average-pooled to ``num_local_frames``, then passed through
  CLAP's own audio projection so they live in the joint embedding space;
- *global*: CLAP's projected clip embedding (duration-weighted mean over windows);
- ``fusion="prepend"``: ``[global, local_1..L]`` -> ``(B, 1 + L, P)``;
  ``fusion="concat"``: ``[local_i ; global]`` per frame -> ``(B, L, 2P)``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import attrs
import torch
import torch.nn.functional as F

from c3llm.core.config import field, in_range, one_of
from c3llm.core.errors import CheckpointError, InputError, UnavailableError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.hub import hub_reachable
from c3llm.core.media import Audio
from c3llm.core.roles.base import load_strict
from c3llm.core.roles.encoder import Encoder, Features

log = logging.getLogger(__name__)

#: HTSAT architectures (``ClapAudioConfig`` kwargs) and their feature extractor settings.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Random-init toy for tests and the embedded world: 4x fewer mel bins, 4x larger hop.
    "tiny": {
        "model": dict(
            spec_size=64, num_mel_bins=16, patch_embeds_hidden_size=16, depths=[1, 1],
            num_attention_heads=[2, 2], window_size=4, hidden_size=32, projection_dim=32,
        ),
        "extractor": dict(
            feature_size=16, sampling_rate=48_000, hop_length=1920, fft_window_size=2048,
            max_length_s=10, frequency_min=50, frequency_max=14_000,
        ),
    },
    # LAION HTSAT-tiny (630k-audioset*.pt, laion/clap-htsat-unfused / -fused).
    "htsat-tiny": {
        "model": dict(
            spec_size=256, num_mel_bins=64, patch_embeds_hidden_size=96, depths=[2, 2, 6, 2],
            num_attention_heads=[4, 8, 16, 32], window_size=8, hidden_size=768, projection_dim=512,
        ),
        "extractor": dict(
            feature_size=64, sampling_rate=48_000, hop_length=480, fft_window_size=1024,
            max_length_s=10, frequency_min=50, frequency_max=14_000,
        ),
    },
    # LAION HTSAT-base (music_audioset_epoch_15_esc_90.14.pt, larger_clap_*).
    "htsat-base": {
        "model": dict(
            spec_size=256, num_mel_bins=64, patch_embeds_hidden_size=128, depths=[2, 2, 12, 2],
            num_attention_heads=[4, 8, 16, 32], window_size=8, hidden_size=1024, projection_dim=512,
        ),
        "extractor": dict(
            feature_size=64, sampling_rate=48_000, hop_length=480, fft_window_size=1024,
            max_length_s=10, frequency_min=50, frequency_max=14_000,
        ),
    },
}
#: ``ClapAudioConfig`` fields that must agree between the preset and a loaded checkpoint.
_ARCH_FIELDS = ("spec_size", "num_mel_bins", "patch_embeds_hidden_size", "depths",
                "num_attention_heads", "window_size", "hidden_size", "projection_dim", "enable_fusion")


@attrs.frozen(kw_only=True)
class ClapEncoderConfig:
    """Config of the frozen CLAP audio encoder."""

    preset: Literal["tiny", "htsat-tiny", "htsat-base"] = field(
        "tiny", help="HTSAT architecture: 'tiny' (random init, tests and the embedded world), "
        "'htsat-tiny' or 'htsat-base' (LAION-CLAP); must match the checkpoint",
        validator=one_of(*PRESETS),
    )
    enable_fusion: bool = field(
        False, help="the checkpoint is a fusion model (LAION '*-fusion-*', laion/clap-htsat-fused): "
        "4-channel 'fusion' extractor input instead of 1-channel 'rand_trunc'",
    )
    pretrained: str | None = field(
        None, path=True, help="local transformers CLAP directory or LAION-CLAP .pt file; "
        "None keeps the random init (seeded by init_seed)",
    )
    hub_id: str | None = field(
        None, help="hub id to load when online (e.g. 'laion/clap-htsat-unfused'); used when "
        "pretrained is None",
    )
    num_local_frames: int = field(
        16, help="local frames per clip after pooling (0: global embedding only)",
        validator=in_range(0, 256),
    )
    fusion: Literal["prepend", "concat"] = field(
        "prepend", help="'prepend': global embedding as frame 0, then local frames (D = P); "
        "'concat': global embedding appended to every local frame (D = 2P)",
        validator=one_of("prepend", "concat"),
    )
    normalize: bool = field(True, help="L2-normalise global and local embeddings, as CLAP compares them")
    init_seed: int = field(0, help="seed of the random init when no weights are loaded")
    max_windows_per_call: int = field(
        16, help="10 s windows sent through HTSAT at once (bounds memory on long batches)",
        validator=in_range(1, 4096),
    )

    def __attrs_post_init__(self) -> None:
        if self.fusion == "concat" and self.num_local_frames == 0:
            raise ValueError("fusion='concat' needs num_local_frames >= 1 (or use fusion='prepend')")


class ClapEncoder(Encoder):
    """Frozen CLAP audio tower; ``forward(list[Audio]) -> Features (B, N, D)`` (see module doc)."""

    modality: ClassVar[str] = "audio"

    def __init__(self, config: ClapEncoderConfig):
        super().__init__()
        from transformers import (
            ClapAudioConfig,
            ClapAudioModelWithProjection,
            ClapFeatureExtractor,
        )

        self.config = config
        preset = PRESETS[config.preset]
        fusion = {"enable_fusion": True, "fusion_type": "aff_2d"} if config.enable_fusion else {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.init_seed)
            self.model = ClapAudioModelWithProjection(ClapAudioConfig(**preset["model"], **fusion))
        self.extractor = ClapFeatureExtractor(**preset["extractor"], truncation=self._truncation, padding="repeatpad")
        self._freeze()
        proj = self.model.config.projection_dim
        self.output_dim = proj if config.fusion == "prepend" else 2 * proj
        self.feature_rate = None  # a fixed number of frames per clip
        self.num_frames = (1 + config.num_local_frames) if config.fusion == "prepend" else config.num_local_frames

    @property
    def _truncation(self) -> str:
        # A fused HTSAT takes 4 mel channels (fusion); an unfused one rejects them (rand_trunc).
        return "fusion" if self.config.enable_fusion else "rand_trunc"

    @property
    def sample_rate(self) -> int:
        return int(self.extractor.sampling_rate)

    @property
    def window_seconds(self) -> float:
        return self.extractor.nb_max_samples / self.extractor.sampling_rate

    def _freeze(self) -> None:
        self.model.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> ClapEncoder:
        """The CLAP tower stays in eval mode (frozen batch norm, no dropout) whatever ``mode``."""
        super().train(mode)
        self.model.eval()
        return self

    # -- loading ------------------------------------------------------------------------------

    def load_pretrained(self) -> None:
        """Load ``pretrained`` (directory or LAION ``.pt``) or ``hub_id``; no-op when neither."""
        cfg = self.config
        if cfg.pretrained is not None:
            path = Path(cfg.pretrained).expanduser()
            if not path.exists():
                raise UnavailableError(
                    f"encoder.pretrained = {str(path)!r} does not exist. Point it at a transformers "
                    f"CLAP directory (save_pretrained) or a LAION-CLAP .pt checkpoint."
                )
            if path.is_dir():
                self._load_transformers(str(path), local_only=True)
            else:
                self._load_laion(path)
        elif cfg.hub_id is not None:
            self._load_transformers(cfg.hub_id, local_only=False)
        self._freeze()
        if cfg.pretrained is not None or cfg.hub_id is not None:
            self.mark_loaded()  # a saved pipeline records the source instead of copying the weights

    def _load_transformers(self, source: str, *, local_only: bool) -> None:
        from transformers import ClapAudioModelWithProjection, ClapFeatureExtractor

        if not local_only:
            if _in_hub_cache(source):
                local_only = True
            elif not hub_reachable():
                raise UnavailableError(
                    f"CLAP {source!r} is not in the local Hugging Face cache and the hub cannot be "
                    f"reached (offline). Download it on a connected machine "
                    f"(`huggingface-cli download {source}` or ClapModel.from_pretrained(...)"
                    f".save_pretrained(DIR)) and set encoder.pretrained = DIR."
                )
        try:
            with _quiet_transformers():
                loaded, info = ClapAudioModelWithProjection.from_pretrained(
                    source, output_loading_info=True, local_files_only=local_only
                )
        except OSError as exc:
            raise UnavailableError(f"cannot load CLAP from {source!r}: {exc}") from exc
        if info["missing_keys"]:
            missing = sorted(info["missing_keys"])
            raise CheckpointError(
                f"{source} lacks {len(missing)} CLAP audio weight(s), e.g. {missing[:3]}: is it a CLAP model?"
            )
        self._check_architecture({f: getattr(loaded.config, f) for f in _ARCH_FIELDS}, source)
        load_strict(self.model, loaded.state_dict(), owner=f"CLAP preset {self.config.preset!r}")
        if Path(source, "preprocessor_config.json").is_file():
            extractor = ClapFeatureExtractor.from_pretrained(source)
            if extractor.feature_size != self.model.config.num_mel_bins:
                raise CheckpointError(
                    f"{source}: feature extractor has {extractor.feature_size} mel bins, model expects "
                    f"{self.model.config.num_mel_bins}"
                )
            extractor.truncation, extractor.padding = self._truncation, "repeatpad"
            self.extractor = extractor
        log.info("CLAP audio encoder loaded from %s (preset %s)", source, self.config.preset)

    def _load_laion(self, path: Path) -> None:
        from c3llm.plugins.encoders.clap_laion_keys import (
            laion_to_transformers,
            read_laion_checkpoint,
        )

        state = laion_to_transformers(read_laion_checkpoint(path))
        has_fusion = any(".fusion_model." in k or ".mel_conv2d." in k for k in state)
        if has_fusion != self.config.enable_fusion:
            raise CheckpointError(
                f"{path} is {'a fusion' if has_fusion else 'an unfused'} LAION-CLAP model but "
                f"encoder.enable_fusion = {self.config.enable_fusion}; set it to {has_fusion}."
            )
        own = self.model.state_dict()
        for key, value in own.items():  # fixed index buffers some LAION exports leave out
            if key.endswith("relative_position_index") and key not in state:
                state[key] = value
        try:
            load_strict(self.model, state, owner=f"CLAP preset {self.config.preset!r}")
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc} (try another encoder.preset: {', '.join(PRESETS)})") from exc
        log.info("CLAP audio encoder loaded from LAION checkpoint %s (preset %s)", path, self.config.preset)

    def _check_architecture(self, loaded: dict[str, Any], source: str) -> None:
        ours = self.model.config
        wrong = [f"{f}: checkpoint {loaded[f]!r} vs preset {getattr(ours, f)!r}"
                 for f in _ARCH_FIELDS if _norm(loaded[f]) != _norm(getattr(ours, f))]
        if wrong:
            raise CheckpointError(
                f"{source} does not match encoder.preset = {self.config.preset!r} / enable_fusion = "
                f"{self.config.enable_fusion}: " + "; ".join(wrong)
                + f". Choose the preset that matches the checkpoint ({', '.join(PRESETS)})."
            )

    # -- encoding -----------------------------------------------------------------------------

    def forward(self, media: Sequence[Audio]) -> Features:
        """Encode a batch of clips (any rate, any channels) -> ``(B, N, D)``, all frames real."""
        windows, spans = self._windows(media)
        local_hidden, global_embeds = self._encode_windows(windows)  # (W, T', H), (W, P)
        frames_per_window = local_hidden.shape[1]
        projection = self.model.audio_projection
        rows = []
        for first, seconds in spans:  # one clip: its windows and their real durations
            weights = torch.tensor(seconds, dtype=global_embeds.dtype)
            glob = (global_embeds[first:first + len(seconds)] * weights[:, None]).sum(0) / weights.sum()  # (P,)
            parts = []
            for w, sec in enumerate(seconds):
                real = max(1, math.ceil(sec / self.window_seconds * frames_per_window - 1e-6))
                parts.append(local_hidden[first + w, :real])
            clip_hidden = torch.cat(parts)  # (L_real, H)
            if self.config.num_local_frames:
                pooled = F.adaptive_avg_pool1d(clip_hidden.T[None], self.config.num_local_frames)[0].T  # (L, H)
                with torch.no_grad():
                    local = projection(pooled)  # (L, P)
            else:
                local = glob.new_zeros(0, glob.shape[0])
            if self.config.normalize:
                glob, local = F.normalize(glob, dim=-1), F.normalize(local, dim=-1)
            if self.config.fusion == "prepend":
                rows.append(torch.cat([glob[None], local]))  # (1 + L, P)
            else:
                rows.append(torch.cat([local, glob.expand_as(local)], dim=-1))  # (L, 2P)
        embeds = torch.stack(rows).float().clone()  # (B, N, D)
        mask = torch.ones(embeds.shape[:2], dtype=torch.bool)
        return Features(embeds, mask)

    def _windows(self, media: Sequence[Audio]) -> tuple[list, list[tuple[int, list[float]]]]:
        """Mono windows at the extractor rate, and per clip (first window index, real seconds)."""
        if isinstance(media, Audio) or not isinstance(media, Sequence) or len(media) == 0:
            raise InputError("the CLAP encoder takes a non-empty list of Audio clips")
        rate, size = self.sample_rate, self.extractor.nb_max_samples
        windows, spans = [], []
        for i, audio in enumerate(media):
            if not isinstance(audio, Audio):
                raise InputError(f"item {i} is {type(audio).__name__}, expected c3llm.core.media.Audio")
            if audio.num_samples == 0:
                raise InputError(f"audio clip {i} is empty (0 samples); CLAP needs at least one sample")
            wav = audio.to(rate, channels=1).waveform[0].double().numpy()  # (T,)
            seconds = []
            first = len(windows)
            for start in range(0, wav.shape[0], size):
                piece = wav[start:start + size]
                windows.append(piece)
                seconds.append(piece.shape[0] / rate)
            spans.append((first, seconds))
        return windows, spans

    def _encode_windows(self, windows: list) -> tuple[torch.Tensor, torch.Tensor]:
        """HTSAT on each window: frequency-averaged last hidden state and projected embedding."""
        locals_, globals_ = [], []
        chunk = self.config.max_windows_per_call
        for start in range(0, len(windows), chunk):
            batch = self.extractor(
                windows[start:start + chunk], sampling_rate=self.sample_rate, return_tensors="pt",
                truncation=self._truncation, padding="repeatpad",
            )
            features = batch["input_features"].float()  # (W, 1 or 4, frames, mels)
            # No window exceeds the extractor's max length, so none needs the fused long path.
            is_longer = torch.zeros(features.shape[0], 1, dtype=torch.bool)
            with torch.no_grad():
                out = self.model(input_features=features, is_longer=is_longer)
            locals_.append(out.last_hidden_state.mean(2).transpose(1, 2))  # (W, T', H)
            globals_.append(out.audio_embeds)  # (W, P)
        return torch.cat(locals_), torch.cat(globals_)


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # malformed id, no cache folder
        return False




@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' table of the text-tower keys an audio-only load skips."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


@hookimpl
def register_encoders(register):
    register(
        "clap", ClapEncoder, ClapEncoderConfig,
        description="frozen CLAP (HTSAT) audio encoder: global + local features, HF dir or LAION .pt",
    )
