"""Audio embedders and classifiers that evaluation metrics run on generated audio.

Two small protocols decouple metrics from networks:

- :class:`AudioEmbedder` — ``embed(audios) -> (M, D)`` rows for Fréchet distances (one row per
  clip, or per frame for VGGish as in the original FAD).
- :class:`AudioClassifier` — ``logits(audios) -> (N, C)`` per clip for KL, MKL and ISc.

Implementations: PANNs CNN14 (AudioSet; embedding and classifier, as in audioldm_eval), VGGish
(embedding, as in the original FAD), any c3llm :class:`~c3llm.core.roles.Encoder` such as CLAP
(:class:`EncoderEmbedder`), and the synthetic world's reference classifier
(:mod:`c3llm.scoring.reference_classifier`). Each carries ``score_suffix`` so that a
metric names its score after the network that produced it (``fd_synth`` is never ``fad``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from c3llm.core.errors import CheckpointError, InputError, UnavailableError
from c3llm.core.media import Audio
from c3llm.scoring.signal import mel_filterbank

log = logging.getLogger(__name__)


@runtime_checkable
class AudioEmbedder(Protocol):
    """Maps clips to embedding rows. ``score_suffix``: ``""`` for the reference network of a
    metric, otherwise a tag appended to the score name (``"synth"`` -> ``fd_synth``)."""

    score_suffix: str

    def embed(self, audios: Sequence[Audio]) -> np.ndarray:
        """:return: ``(M, D)`` float64 rows (``M >= len(audios)`` for frame-level embedders)."""


@runtime_checkable
class AudioClassifier(Protocol):
    """Maps clips to class logits; ``labels`` names the classes when known."""

    score_suffix: str
    labels: tuple[str, ...] | None

    def logits(self, audios: Sequence[Audio]) -> np.ndarray:
        """:return: ``(N, C)`` float64 pre-softmax scores, one row per clip."""


def mono_batch(audios: Sequence[Audio], sample_rate: int, *, num_samples: int | None = None) -> torch.Tensor:
    """Resample and downmix clips to ``(B, T)``; zero-pad (or cut) to ``num_samples`` or the longest."""
    if not audios:
        raise InputError("no audio clips given")
    waves = []
    for a in audios:
        if not isinstance(a, Audio):
            raise InputError(f"expected c3llm.core.media.Audio, got {type(a).__name__}")
        waves.append(a.to(sample_rate, channels=1).waveform[0].float())
    length = num_samples or max(w.shape[0] for w in waves)
    out = torch.zeros(len(waves), length)
    for i, w in enumerate(waves):
        out[i, : min(length, w.shape[0])] = w[:length]
    return out  # (B, T)


@torch.no_grad()
def run_in_batches(net: nn.Module, audios: Sequence[Audio], sample_rate: int, batch_size: int, *,
                   num_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``net(mono_batch(...)) -> (embeddings, logits)`` over ``audios`` in batches, as float64
    ``(N, D)`` and ``(N, C)`` arrays."""
    embs, logits = [], []
    for start in range(0, len(audios), batch_size):
        e, l = net(mono_batch(audios[start : start + batch_size], sample_rate, num_samples=num_samples))
        embs.append(e.double().numpy())
        logits.append(l.double().numpy())
    return np.concatenate(embs), np.concatenate(logits)


def load_state_file(path: str | Path, *, what: str, hint: str) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file or a third-party ``.pth`` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise UnavailableError(f"{what} checkpoint not found at {path}. {hint}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files
        raise CheckpointError(f"cannot read {what} checkpoint {path}: {exc}") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} checkpoint {path} holds {type(state).__name__}, expected a state dict")
    return state


# ---------------------------------------------------------------------------------------
# Log-mel front end (torch)


class LogMel(nn.Module):
    """Waveform ``(B, T)`` -> log-mel ``(B, frames, n_mels)``.

    ``kind="db"``: ``10 log10(max(1e-10, |X|² M))`` (PANNs/torchlibrosa); ``kind="log_offset"``:
    ``log(|X| M + 0.01)`` on the magnitude (VGGish).
    """

    def __init__(self, *, sample_rate: int, n_fft: int, hop_length: int, n_mels: int, fmin: float,
                 fmax: float, win_length: int | None = None, center: bool = True, htk: bool = False,
                 slaney_norm: bool = True, kind: str = "db", mel: np.ndarray | None = None):
        super().__init__()
        self.n_fft, self.hop_length, self.center, self.kind = n_fft, hop_length, center, kind
        self.win_length = win_length or n_fft
        self.register_buffer("window", torch.hann_window(self.win_length, periodic=True), persistent=False)
        if mel is None:
            mel = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk=htk, slaney_norm=slaney_norm)
        self.register_buffer("mel_basis", torch.from_numpy(mel.T.copy()).float(), persistent=False)  # (F, n_mels)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if not self.center and self.win_length < self.n_fft:
            # torch centres a short window inside the n_fft frame; pad so frame k still covers
            # samples [k * hop, k * hop + win_length) as in framing-then-zero-padding front ends.
            side = (self.n_fft - self.win_length) // 2
            wav = F.pad(wav, (side, side))
        spec = torch.stft(wav, self.n_fft, self.hop_length, self.win_length, self.window,
                          center=self.center, pad_mode="reflect", return_complex=True).abs()  # (B, F, frames)
        spec = spec.transpose(1, 2)  # (B, frames, F)
        if self.kind == "db":
            return 10.0 * torch.log10(torch.clamp((spec**2) @ self.mel_basis, min=1e-10))
        return torch.log(spec @ self.mel_basis + 0.01)


# ---------------------------------------------------------------------------------------
# PANNs CNN14


@attrs.frozen(kw_only=True)
class Cnn14Config:
    """CNN14 hyper-parameters (defaults: ``Cnn14_mAP=0.431.pth``, 32 kHz; the 16 kHz model
    uses ``sample_rate=16000, window_size=512, hop_size=160, fmax=8000``)."""

    sample_rate: int = 32000
    window_size: int = 1024
    hop_size: int = 320
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    classes_num: int = 527
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool != (1, 1) else x


class Cnn14(nn.Module):
    """PANNs CNN14 (Kong et al. 2020) with parameter names matching the released checkpoints.

    ``forward(wav (B, T)) -> (embedding (B, widths[-1]), logits (B, classes_num))``; the
    released model's clip-wise output is ``sigmoid(logits)``.
    """

    def __init__(self, config: Cnn14Config = Cnn14Config()):
        super().__init__()
        c = config
        self.config = c
        self.frontend = LogMel(sample_rate=c.sample_rate, n_fft=c.window_size, hop_length=c.hop_size,
                               n_mels=c.mel_bins, fmin=c.fmin, fmax=c.fmax, kind="db")
        self.bn0 = nn.BatchNorm2d(c.mel_bins)
        chans = (1, *c.widths)
        for i in range(len(c.widths)):
            setattr(self, f"conv_block{i + 1}", _ConvBlock(chans[i], chans[i + 1]))
        self.fc1 = nn.Linear(c.widths[-1], c.widths[-1])
        self.fc_audioset = nn.Linear(c.widths[-1], c.classes_num)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.frontend(wav).unsqueeze(1)  # (B, 1, frames, mels)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # normalise per mel bin
        n = len(self.config.widths)
        for i in range(n):
            x = getattr(self, f"conv_block{i + 1}")(x, (2, 2) if i < n - 1 else (1, 1))
        x = x.mean(dim=3)  # (B, C, frames')
        x = x.max(dim=2).values + x.mean(dim=2)  # (B, C)
        embedding = F.relu(self.fc1(x))
        return embedding, self.fc_audioset(embedding)

    def load_panns_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a PANNs state dict; the fixed STFT kernels are dropped (``torch.stft`` computes
        the same transform) and the stored mel matrix, when present, replaces ours."""
        state = dict(state)
        mel = state.pop("logmel_extractor.melW", None)
        state = {k: v for k, v in state.items() if not k.startswith(("spectrogram_extractor.", "spec_augmenter."))}
        from c3llm.core.roles.base import load_strict

        try:
            load_strict(self, state, owner="PANNs Cnn14")
        except CheckpointError as exc:
            raise CheckpointError(f"{exc} Set the embedder's Cnn14Config to the checkpoint's variant.") from exc
        if mel is not None:
            if tuple(mel.shape) != tuple(self.frontend.mel_basis.shape):
                raise CheckpointError(f"PANNs mel matrix {tuple(mel.shape)} vs model {tuple(self.frontend.mel_basis.shape)}")
            self.frontend.mel_basis.copy_(mel.float())


class PannsCnn14:
    """PANNs CNN14 as both an :class:`AudioEmbedder` (2048-d ``fc1``) and an
    :class:`AudioClassifier` (527 AudioSet logits). Reference network of ``fd``/``kl``/``isc``/``mkl``."""

    score_suffix = ""
    labels = None
    download_hint = (
        "Download Cnn14_mAP=0.431.pth (or Cnn14_16k_mAP=0.438.pth) from https://zenodo.org/record/3987831 "
        "on a machine with network access and pass its local path as embedder_path."
    )

    def __init__(self, model: Cnn14, *, batch_size: int = 8, max_seconds: float | None = None):
        self.model = model.eval()
        self.batch_size = batch_size
        self.max_seconds = max_seconds

    @classmethod
    def from_checkpoint(cls, path: str | Path | None, config: Cnn14Config = Cnn14Config(), **kw) -> PannsCnn14:
        if path is None:
            raise UnavailableError(f"the panns-cnn14 embedder needs embedder_path. {cls.download_hint}")
        model = Cnn14(config)
        model.load_panns_state(load_state_file(path, what="PANNs CNN14", hint=cls.download_hint))
        return cls(model, **kw)

    def _run(self, audios: Sequence[Audio]) -> tuple[np.ndarray, np.ndarray]:
        sr = self.model.config.sample_rate
        n = int(self.max_seconds * sr) if self.max_seconds else None
        return run_in_batches(self.model, audios, sr, self.batch_size, num_samples=n)

    def embed(self, audios: Sequence[Audio]) -> np.ndarray:
        return self._run(audios)[0]

    def logits(self, audios: Sequence[Audio]) -> np.ndarray:
        return self._run(audios)[1]


# ---------------------------------------------------------------------------------------
# VGGish


class VGGishNet(nn.Module):
    """VGGish (Hershey et al. 2017) with the parameter names of ``torchvggish`` checkpoints.

    Input: log-mel examples ``(B, 1, 96, 64)`` (0.96 s of 10 ms frames); output ``(B, 128)``.
    """

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 256, 512, 512), hidden: int = 4096,
                 out_dim: int = 128):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(cin, w, 3, padding=1), nn.ReLU(inplace=True)]
            if i in (0, 1, 3, 5):  # pools after conv1, conv2, conv3_2, conv4_2
                layers.append(nn.MaxPool2d(2, 2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(cin * 6 * 4, hidden), nn.ReLU(True), nn.Linear(hidden, hidden), nn.ReLU(True),
            nn.Linear(hidden, out_dim), nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, C, 6, 4)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # channels last, as the TF original
        return self.embeddings(x)


def vggish_mel_matrix(sample_rate: int = 16000, n_fft: int = 512, n_mels: int = 64,
                      fmin: float = 125.0, fmax: float = 7500.0) -> np.ndarray:
    """VGGish's mel weights ``(n_mels, n_fft // 2 + 1)``: HTK mel scale, triangles drawn in mel
    space (not Hz, unlike librosa), no area normalisation, DC bin zeroed (``mel_features.py``)."""
    bins_mel = 1127.0 * np.log1p(np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1) / 700.0)
    edges = np.linspace(1127.0 * np.log1p(fmin / 700.0), 1127.0 * np.log1p(fmax / 700.0), n_mels + 2)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    weights = np.maximum(0.0, np.minimum((bins_mel - lower) / (center - lower), (upper - bins_mel) / (upper - center)))
    weights[:, 0] = 0.0
    return weights


class VGGish:
    """VGGish frame embeddings (one 128-d row per 0.96 s), the original FAD's network.

    Front end as the TF release: 16 kHz, 25 ms periodic-Hann window, 10 ms hop, 64 HTK mel bands
    125–7500 Hz on the magnitude, ``log(mel + 0.01)``, non-overlapping 96-frame examples.
    Embeddings are taken before PCA/quantisation, as the FAD tools do.
    """

    score_suffix = ""
    download_hint = (
        "Download torchvggish's vggish-10086976.pth (github.com/harritaylor/torchvggish releases) on a "
        "machine with network access and pass its local path as embedder_path."
    )

    def __init__(self, model: VGGishNet, *, batch_size: int = 64):
        self.model = model.eval()
        self.batch_size = batch_size
        self.frontend = LogMel(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64,
                               fmin=125.0, fmax=7500.0, center=False, kind="log_offset",
                               mel=vggish_mel_matrix())

    @classmethod
    def from_checkpoint(cls, path: str | Path | None, **kw) -> VGGish:
        if path is None:
            raise UnavailableError(f"the vggish embedder needs embedder_path. {cls.download_hint}")
        model = VGGishNet()
        from c3llm.core.roles.base import load_strict

        load_strict(model, load_state_file(path, what="VGGish", hint=cls.download_hint), owner="VGGish")
        return cls(model, **kw)

    def examples(self, audio: Audio) -> torch.Tensor:
        """Log-mel examples ``(E, 1, 96, 64)`` of one clip (at least one, zero-padded)."""
        wav = mono_batch([audio], 16000)
        need = 400 + 95 * 160
        if wav.shape[1] < need:
            wav = F.pad(wav, (0, need - wav.shape[1]))
        mel = self.frontend(wav)[0]  # (frames, 64)
        count = mel.shape[0] // 96
        return mel[: count * 96].reshape(count, 1, 96, 64)

    @torch.no_grad()
    def embed(self, audios: Sequence[Audio]) -> np.ndarray:
        examples = torch.cat([self.examples(a) for a in audios])
        rows = [self.model(examples[i : i + self.batch_size]) for i in range(0, len(examples), self.batch_size)]
        return torch.cat(rows).double().numpy()


# ---------------------------------------------------------------------------------------
# Any c3llm encoder (CLAP)


class EncoderEmbedder:
    """Clip embeddings from a c3llm audio :class:`~c3llm.core.roles.Encoder` (e.g. CLAP): the
    masked mean of its feature frames. Scores carry ``score_suffix`` (default ``"clap"``)."""

    def __init__(self, encoder: nn.Module, *, score_suffix: str = "clap", batch_size: int = 8):
        if getattr(encoder, "modality", None) != "audio":
            raise InputError(f"EncoderEmbedder needs an audio encoder, got modality {getattr(encoder, 'modality', None)!r}")
        self.encoder = encoder
        self.score_suffix = score_suffix
        self.batch_size = batch_size

    @torch.no_grad()
    def embed(self, audios: Sequence[Audio]) -> np.ndarray:
        rows = []
        for start in range(0, len(audios), self.batch_size):
            feats = self.encoder(list(audios[start : start + self.batch_size]))
            mask = feats.mask.unsqueeze(-1).float()  # (B, N, 1)
            rows.append(((feats.embeds * mask).sum(1) / mask.sum(1).clamp(min=1)).double().cpu().numpy())
        return np.concatenate(rows)


# ---------------------------------------------------------------------------------------
# Building from metric configs
