"""``melvq``: a codec of residual k-means codebooks over log-mel frames, with Griffin-Lim synthesis.

A code frame is ``frames_per_code`` consecutive log-mel frames stacked into one vector
(``(frames_per_code * n_mels)``-d); codebook 1 quantises it, codebook ``q`` quantises what
codebooks ``< q`` left (residual VQ, as in EnCodec). Decoding sums the code vectors, turns the
log-mel frames back into STFT magnitudes (pseudo-inverse of the mel filterbank) and recovers a
phase with fast Griffin-Lim (Perraudin et al., 2013).

Why it exists: it learns in closed form (k-means, about half a minute for the embedded
default's world on 2 cores) and never collapses, where a small EnCodec trained from scratch on
a CPU budget collapsed on sparse audio (docs/codec.md, "Known problem"). Its audio is
phase-approximate (SI-SNR is meaningless for it) but keeps what the tasks need: which source,
its pitch, loudness and event times. The paper's codec is ``encodec``; this is the embedded
default's.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from c3llm.core.config import field, in_range
from c3llm.core.errors import CheckpointError, InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.roles import FittableDecoder
from c3llm.plugins.decoders.encodec_vq import kmeans, nearest
from c3llm.plugins.decoders.mel_frames import MelFrames, griffin_lim  # noqa: F401  (griffin_lim: re-exported)

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "codebooks.safetensors"
FORMAT = "c3llm-melvq"


@attrs.frozen(kw_only=True)
class MelVQCodecConfig:
    """Mel-VQ codec. The code rate is ``sample_rate / (stft_hop * frames_per_code)`` frames/s."""

    pretrained: str | None = field(
        None, help="directory written by save_pretrained (train-codec's codec/ folder); unset: untrained codebooks"
    )
    sample_rate: int = field(16_000, help="Hz", validator=in_range(1000, 192_000))
    n_fft: int = field(640, help="STFT size (Hann window of the same length)", validator=in_range(16))
    stft_hop: int = field(160, help="STFT hop in samples (n_fft / 4 suits Griffin-Lim)", validator=in_range(1))
    frames_per_code: int = field(4, help="STFT frames stacked into one code frame", validator=in_range(1))
    n_mels: int = field(64, help="mel bands per STFT frame", validator=in_range(4))
    codebook_size: int = field(256, help="entries per codebook (K)", validator=in_range(2))
    num_codebooks: int = field(2, help="residual codebooks (Q)", validator=in_range(1, 16))
    log_floor: float = field(1e-5, help="added to mel magnitudes before the log", validator=in_range(0.0, low_open=True))
    griffin_lim_iters: int = field(32, help="Griffin-Lim iterations per decode", validator=in_range(1))
    griffin_lim_momentum: float = field(0.99, help="fast Griffin-Lim momentum (0 = classic)", validator=in_range(0.0, 1.0))
    seed: int = field(0, help="seed of the initial phase (decode is deterministic) and of k-means")

    def __attrs_post_init__(self) -> None:
        if self.n_mels > self.n_fft // 2 + 1:
            raise ValueError(f"n_mels = {self.n_mels} exceeds the {self.n_fft // 2 + 1} STFT bins of n_fft = {self.n_fft}")
        if self.stft_hop > self.n_fft:
            raise ValueError(f"stft_hop = {self.stft_hop} exceeds n_fft = {self.n_fft}; frames would skip samples")

    def architecture(self) -> dict[str, Any]:
        """The keys a checkpoint's codebooks depend on (everything but decode-time settings)."""
        keep = ("sample_rate", "n_fft", "stft_hop", "frames_per_code", "n_mels", "codebook_size", "num_codebooks", "log_floor")
        return {key: getattr(self, key) for key in keep}


class MelVQCodec(FittableDecoder):
    """Residual k-means codebooks over stacked log-mel frames; Griffin-Lim decoding.

    ``encode``: ``(B, 1, T)`` -> ``(B, Q, S)`` with ``S = ceil(T / hop_length)``;
    ``decode``: ``(B, Q', S)`` -> ``(B, 1, S * hop_length)``.
    """

    def __init__(self, config: MelVQCodecConfig):
        super().__init__()
        self.config = config
        self.sample_rate = config.sample_rate
        self.channels = 1
        self.hop_length = config.stft_hop * config.frames_per_code
        self.frame_rate = config.sample_rate / self.hop_length
        self.num_codebooks = config.num_codebooks
        self.cardinality = config.codebook_size
        self.frames = MelFrames(
            sample_rate=config.sample_rate, n_fft=config.n_fft, stft_hop=config.stft_hop,
            frames_per_code=config.frames_per_code, n_mels=config.n_mels, log_floor=config.log_floor,
            griffin_lim_iters=config.griffin_lim_iters, griffin_lim_momentum=config.griffin_lim_momentum, seed=config.seed)
        self.code_dim = self.frames.dim
        # Untrained codebooks: every entry at the log floor plus small seeded noise; fit() replaces them.
        gen = torch.Generator().manual_seed(config.seed)
        floor = math.log(config.log_floor)
        self.register_buffer(
            "codebooks", floor + 0.1 * torch.randn(config.num_codebooks, config.codebook_size, self.code_dim, generator=gen)
        )  # (Q, K, D)
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self._warned_unfitted = False

    # -- features -----------------------------------------------------------------------------

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` waveform -> ``(B, S, frames_per_code * n_mels)`` stacked log-mel frames."""
        return self.frames.features(wav)

    def synthesize(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, S, frames_per_code * n_mels)`` log-mel frames -> ``(B, 1, S * hop_length)`` audio."""
        return self.frames.synthesize(features)

    # -- the Decoder contract -------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` float waveform at ``sample_rate`` -> ``(B, Q, S)`` long codes."""
        self.check_waveform(wav)
        self._warn_if_unfitted()
        residual = self.features(wav.to(self.codebooks.dtype))  # (B, S, D)
        codes = []
        for book in self.codebooks:  # (K, D)
            index = nearest(residual, book)  # (B, S)
            residual = residual - book[index]
            codes.append(index)
        return torch.stack(codes, dim=1)  # (B, Q, S)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, Q', S)`` codes (first ``Q'`` codebooks) -> ``(B, 1, S * hop_length)`` waveform."""
        self.check_codes(codes)
        vectors = sum(self.codebooks[q][codes[:, q]] for q in range(codes.shape[1]))  # (B, S, D)
        return self.synthesize(vectors)

    # -- learning -------------------------------------------------------------------------------

    @torch.no_grad()
    def fit(self, waves: Sequence[torch.Tensor], *, iters: int = 25, max_frames: int = 200_000) -> dict[str, Any]:
        """Learn the codebooks by residual k-means over the code frames of ``waves`` (each ``(1, T)``).

        :return: frames used and the mean absolute residual (log-mel units) after each codebook.
        """
        if not waves:
            raise InputError("melvq.fit got no audio")
        frames = torch.cat([self.features(w[None].to(self.codebooks.dtype))[0] for w in waves])  # (N, D)
        if frames.shape[0] < self.cardinality:
            raise InputError(
                f"melvq.fit got {frames.shape[0]} code frames, fewer than codebook_size = {self.cardinality}; "
                f"give more audio or lower codebook_size"
            )
        gen = torch.Generator().manual_seed(self.config.seed)
        if frames.shape[0] > max_frames:
            frames = frames[torch.randperm(frames.shape[0], generator=gen)[:max_frames]]
        centres_gen = torch.Generator().manual_seed(self.config.seed)
        residual, errors = frames, []
        for q in range(self.num_codebooks):
            centres, _ = kmeans(residual, self.cardinality, iters, centres_gen)
            self.codebooks[q].copy_(centres)
            residual = residual - centres[nearest(residual, centres)]
            errors.append(float(residual.abs().mean()))
        self.fitted.fill_(True)
        log.info("melvq: fitted %d codebooks of %d on %d frames; residual |error| per codebook %s",
                 self.num_codebooks, self.cardinality, frames.shape[0], [round(e, 3) for e in errors])
        return {"frames": int(frames.shape[0]), "residual_error": errors}

    def _warn_if_unfitted(self) -> None:
        if not bool(self.fitted) and not self._warned_unfitted:
            log.warning("melvq codec has untrained codebooks: run train-codec (or codec.fit) or set pretrained")
            self._warned_unfitted = True

    # -- weights ----------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` (the architecture) and ``codebooks.safetensors``."""
        from c3llm.core.checkpoint import save_tensors

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        record = {"format": FORMAT, **self.config.architecture()}
        (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        save_tensors(directory / WEIGHTS_FILE, {"codebooks": self.codebooks, "fitted": self.fitted})
        return directory

    def load_pretrained(self) -> None:
        """Load the codebooks of ``config.pretrained``; refuse another architecture."""
        from c3llm.core.checkpoint import load_tensors

        if self.config.pretrained is None:
            return
        path = Path(self.config.pretrained).expanduser()
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise CheckpointError(
                f"pretrained = {str(path)!r} is not a melvq codec directory (needs {CONFIG_FILE} and "
                f"{WEIGHTS_FILE}, as written by train-codec or save_pretrained)"
            )
        record = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        if record.pop("format", None) != FORMAT:
            raise CheckpointError(f"{path / CONFIG_FILE} is not a melvq codec config")
        ours = self.config.architecture()
        diff = {k: (ours.get(k), v) for k, v in record.items() if ours.get(k) != v}
        if diff:
            shown = "; ".join(f"{k}: config {a!r} vs checkpoint {b!r}" for k, (a, b) in diff.items())
            raise CheckpointError(f"melvq codebooks at {path} do not match the configured codec ({shown}); set those keys")
        state = load_tensors(path / WEIGHTS_FILE)
        self.load_checkpoint_state_dict(state)
        log.info("loaded melvq codebooks from %s", path)



@hookimpl
def register_decoders(register):
    register(
        "melvq", MelVQCodec, MelVQCodecConfig,
        description="log-mel residual k-means codec with Griffin-Lim synthesis; learns in seconds on a CPU",
    )
