"""``Pipeline``: the Python entry point — build, save, load, and run the three tasks."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from c3llm.core.config import apply_overrides, from_mapping, load_file
from c3llm.core.errors import CheckpointError, InputError
from c3llm.core.media import Audio, Video, load_audio, load_video
from c3llm.core.registry import get_registry
from c3llm.method.assembly import assemble, build_components, load_model, save_model
from c3llm.method.continuation import (
    Windows,
    decode_chunked,
    refine_windowed,
    windowed_codes,
)
from c3llm.method.generation import (
    MAX_SECONDS,
    SamplingConfig,
    codes_to_audio,
    generate_acoustic,
    generate_text,
    resynthesize,
)
from c3llm.method.model import C3LLM
from c3llm.method.pipeline_config import GenerateSection, parse_pipeline_spec
from c3llm.method.sequence import PromptConfig

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 2000
#: Shortest audio a request may ask for (shorter would round to no samples).
MIN_SECONDS = 0.05
#: Largest seed accepted (seeds feed 64-bit generators).
MAX_SEED = 2**63 - 1
# Request bounds (docs/limits.md): audio asked for, and audio or video read, last at most
# MAX_SECONDS; a video read without a duration is clipped to its first MAX_SECONDS.


class Pipeline:
    """A built C3LLM model with the task methods.

    Build it with :meth:`from_plugins`, :meth:`from_config` or :meth:`from_pretrained`.
    The first generation call merges LoRA weights for speed (``fast_inference=True``);
    save before generating if you mean to keep training.
    """

    def __init__(self, model: C3LLM, *, generate: GenerateSection = GenerateSection(),
                 fast_inference: bool = True):
        self.model = model
        self.generate_defaults = generate
        self.fast_inference = fast_inference
        self._inference_ready = False

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_plugins(
        cls,
        *,
        decoder: str | Mapping[str, Any],
        backbone: str | Mapping[str, Any],
        refiner: str | Mapping[str, Any] | None = None,
        audio_encoder: str | Mapping[str, Any] | None = None,
        video_encoder: str | Mapping[str, Any] | None = None,
        prompts: PromptConfig | Mapping[str, Any] | None = None,
        generate: GenerateSection | Mapping[str, Any] | None = None,
        projector_hidden: int | None = None,
        device: str = "cpu",
        disabled_plugins: Iterable[str] = (),
    ) -> Pipeline:
        """Build from registered component names, or ``{"name": ..., **config}`` mappings."""
        specs = {"decoder": decoder, "backbone": backbone, "refiner": refiner,
                 "audio_encoder": audio_encoder, "video_encoder": video_encoder}
        specs = {k: v for k, v in specs.items() if v is not None}
        registry = get_registry(disabled_plugins)
        components = build_components(registry, specs)
        prompts = from_mapping(PromptConfig, prompts or {}, where="prompts")
        generate = from_mapping(GenerateSection, generate or {}, where="generate")
        model = assemble(components, prompts=prompts, projector_hidden=projector_hidden)
        return cls(model.to(device), generate=generate)

    @classmethod
    def from_config(cls, source: str | Path | Mapping[str, Any], overrides: Sequence[str] = (),
                    disabled_plugins: Iterable[str] = ()) -> Pipeline:
        """Build from a launcher TOML file (or its mapping); ``overrides`` like ``"backbone.lora_r=8"``."""
        base_dir = None
        if isinstance(source, (str, Path)):
            base_dir = Path(source).resolve().parent
            data = load_file(source)
        else:
            data = dict(source)
        data = apply_overrides(data, overrides)
        registry = get_registry(disabled_plugins)
        spec = parse_pipeline_spec(data, base_dir=base_dir, registry=registry)
        components = build_components(registry, spec.components, base_dirs={k: base_dir for k in spec.components})
        model = assemble(components, prompts=spec.prompts, projector_hidden=spec.projector_hidden)
        return cls(model.to(spec.device), generate=spec.generate)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write weights (safetensors), configs and plugin versions to ``directory``."""
        if self._inference_ready and self.fast_inference:
            raise CheckpointError(
                "this pipeline merged its adapters for fast generation and can no longer be saved "
                "faithfully; save before the first generation call, or build with fast_inference=False"
            )
        from c3llm.core.config import to_mapping

        return save_model(self.model, Path(directory), extra={"generate": to_mapping(self.generate_defaults)})

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, device: str = "cpu", disabled_plugins: Iterable[str] = (),
                        paths: Mapping[str, str | Path] | None = None) -> Pipeline:
        """Load a directory written by :meth:`save_pretrained` (or a run folder holding one).

        :param paths: where frozen models moved since the save, by dotted key, e.g.
            ``{"backbone.pretrained": "/new/gemma-2b"}``; without it a model missing from its
            recorded path is looked for at the same place relative to the checkpoint.
        """
        model, record = load_model(get_registry(disabled_plugins), Path(directory), paths)
        generate = from_mapping(GenerateSection, record.get("generate", {}), where="generate")
        return cls(model.to(device), generate=generate)

    # -- what it can do -------------------------------------------------------------------

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks this pipeline runs: ``t2a`` always, ``v2a`` with a video encoder, ``a2t``
        with an audio encoder."""
        return ("t2a",) + tuple(t for t, m in (("v2a", "video"), ("a2t", "audio")) if m in self.model.encoders)

    @property
    def codec(self):
        """The pipeline's audio codec (the ``decoder`` role)."""
        return self.model.decoder

    # -- tasks ----------------------------------------------------------------------------

    def text_to_audio(self, text: str | Sequence[str], *, duration: float | Sequence[float] | None = None,
                      seed: int | None = None, refine: bool = True, **sampling: Any) -> Audio | list[Audio]:
        """Generate audio from caption(s): :meth:`text_to_tokens` then :meth:`tokens_to_audio`.

        :param duration: seconds, one for all or one per caption (default: the config's
            ``generate.duration``, else the model decides when to stop, up to
            ``sampling.max_seconds``).
        :param refine: run the NAR refiner (codebooks 2..Q); ``False`` decodes codebook 1 alone.
        :param sampling: overrides of :class:`SamplingConfig` (temperature, top_k, top_p,
            guidance_scale, max_seconds).
        """
        tokens = self.text_to_tokens(text, duration=duration, seed=seed, **sampling)
        audios = self.tokens_to_audio(tokens, refine=refine)
        return audios[0] if isinstance(text, str) else audios

    def video_to_audio(self, video: str | Path | Video | Sequence[str | Path | Video], *,
                       text: str | Sequence[str] | None = None, duration: float | Sequence[float] | None = None,
                       seed: int | None = None, refine: bool = True, video_pooling: str = "frame",
                       **sampling: Any) -> Audio | list[Audio]:
        """Generate audio for video(s); it lasts as long as each video unless ``duration`` says.

        :param text: optional caption(s) conditioning jointly with the video (V+T -> A).
        :param video_pooling: ``"frame"`` (per-frame features, the method) or ``"mean"``
            (every frame replaced by the clip's mean feature: the paper's no-timing ablation).
        """
        tokens = self.video_to_tokens(video, text=text, duration=duration, seed=seed,
                                      video_pooling=video_pooling, **sampling)
        audios = self.tokens_to_audio(tokens, refine=refine)
        return audios[0] if isinstance(video, (str, Path, Video)) else audios

    def text_to_tokens(self, text: str | Sequence[str], *, duration: float | Sequence[float] | None = None,
                       seed: int | None = None, **sampling: Any) -> CoarseTokens:
        """The LLM's codebook-1 tokens for caption(s), with the condition the refiner needs."""
        texts, _ = _as_list(text, str, "text")
        for t in texts:
            _check_text(t)
        if duration is None:
            duration = self.generate_defaults.duration
        durations = _per_item(duration, len(texts))
        self._ready()
        seq = self.model.sequences
        prompts = [seq.text_to_audio(t) for t in texts]
        windows = self._windows(durations)
        codes = self._codes(lambda i, start, end: prompts[i], durations, seed, sampling, windows)
        return CoarseTokens(codes=codes, captions=list(texts), video=[None] * len(texts), durations=durations,
                            windows=windows)

    def video_to_tokens(self, video: str | Path | Video | Sequence[str | Path | Video], *,
                        text: str | Sequence[str] | None = None, duration: float | Sequence[float] | None = None,
                        seed: int | None = None, video_pooling: str = "frame", **sampling: Any) -> CoarseTokens:
        """The LLM's codebook-1 tokens for video(s) (and optional captions); see :meth:`video_to_audio`."""
        if video_pooling not in ("frame", "mean"):
            raise InputError(f"video_pooling must be 'frame' or 'mean', got {video_pooling!r}")
        videos, _ = _as_list(video, (str, Path, Video), "video")
        wanted = _per_item(duration, len(videos))
        # decoding stops at the duration asked for (else at MAX_SECONDS: longer videos are clipped)
        videos = [_clip_video(v if isinstance(v, Video) else load_video(v, max_seconds=d or MAX_SECONDS))
                  for v, d in zip(videos, wanted)]
        texts: list[str | None] = [None] * len(videos)
        if text is not None:
            texts, _ = _as_list(text, str, "text")
            if len(texts) != len(videos):
                raise InputError(f"got {len(videos)} videos but {len(texts)} texts")
            for t in texts:
                _check_text(t)
        durations = [d if d is not None else v.duration for d, v in zip(wanted, videos)]
        self._ready()
        feats = self.model.encode_media("video", videos)
        if video_pooling == "mean":
            feats = [f.mean(0, keepdim=True).expand_as(f).clone() for f in feats]  # (N, D), no timing left
        seq = self.model.sequences
        rate = self.model.decoder.frame_rate
        spans = [VideoSpan(f, v.duration, rate) for f, v in zip(feats, videos)]
        windows = self._windows(durations, video=True)
        codes = self._codes(lambda i, start, end: seq.video_to_audio(
            spans[i].frames(start, end) if windows is not None else feats[i], caption=texts[i]),
            durations, seed, sampling, windows)
        return CoarseTokens(codes=codes, captions=texts, video=feats, durations=durations, windows=windows,
                            video_seconds=[v.duration for v in videos])

    @torch.no_grad()
    def tokens_to_audio(self, tokens: CoarseTokens, *, refine: bool = True) -> list[Audio]:
        """Codebook-1 tokens -> the refiner (codebooks 2..Q, unless ``refine`` is off) -> the
        codec -> one :class:`Audio` per item, trimmed to its duration."""
        self._ready()
        windows = tokens.windows
        if windows is None or all(c.shape[0] <= windows.size for c in tokens.codes):
            return codes_to_audio(self.model, tokens.codes, captions=tokens.captions, video=tokens.video,
                                  durations=tokens.durations, refine=refine)
        return [self._long_audio(tokens, i, refine) for i in range(len(tokens.codes))]

    def _long_audio(self, tokens: CoarseTokens, i: int, refine: bool) -> Audio:
        """One item longer than a window: refine window by window, decode in cross-faded chunks."""
        model, windows = self.model, tokens.windows
        coarse = tokens.codes[i]
        codes = coarse[None]  # (1, S)
        if refine and model.refiner is not None:
            feats = tokens.video[i]
            span = VideoSpan(feats, tokens.video_seconds[i], model.decoder.frame_rate) if feats is not None else None
            codes = refine_windowed(model, coarse, lambda start, end: (
                tokens.captions[i], span.frames(start, end) if span is not None else None), windows)
        wav = decode_chunked(model.decoder, codes, chunk=windows.size, overlap=max(1, windows.context // 2))
        duration = tokens.durations[i]
        samples = round(duration * model.decoder.sample_rate) if duration is not None else wav.shape[-1]
        return Audio(wav[:, :samples].float().cpu(), int(model.decoder.sample_rate))

    def reconstruct(self, audio: str | Path | Audio) -> Audio:
        """``audio`` through the pipeline's codec (encode -> decode): what the best generation
        can sound like with this codec."""
        audio = audio if isinstance(audio, Audio) else load_audio(audio)
        _check_audio(audio)
        return resynthesize(self.model.decoder, audio)

    def audio_to_text(self, audio: str | Path | Audio | Sequence[str | Path | Audio], *,
                      seed: int | None = None, **decoding: Any) -> str | list[str]:
        """Caption audio. ``decoding``: overrides of :class:`TextDecodingConfig`
        (strategy "greedy" | "beam" | "sample", num_beams, max_tokens, temperature, top_k, top_p)."""
        audios, single = _as_list(audio, (str, Path, Audio), "audio")
        audios = [a if isinstance(a, Audio) else load_audio(a) for a in audios]
        for a in audios:
            _check_audio(a)
        config = _evolve(self.generate_defaults.text, decoding, "decoding")
        self._ready()
        feats = self.model.encode_media("audio", audios)
        prompts = [self.model.sequences.audio_to_text(f) for f in feats]
        ids = generate_text(self.model, prompts, config, generator=self._generators(seed, len(prompts)))
        texts = [self.model.backbone.detokenize(i) for i in ids]
        return texts[0] if single else texts

    # -- internals ------------------------------------------------------------------------

    def _ready(self) -> None:
        if not self._inference_ready:
            self.model.eval()
            if self.fast_inference:
                self.model.backbone.prepare_for_inference()
            self._inference_ready = True

    def _generator(self, seed: int | None) -> torch.Generator | None:
        if seed is None:
            return None
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise InputError(f"seed must be an integer from 0 to 2**63 - 1, got {str(seed)[:40]}")
        return torch.Generator(device=self.model.device).manual_seed(int(seed))

    def _generators(self, seed: int | Sequence[int] | None, count: int):
        """One generator for the batch (``seed`` an int), or one per item (a list of seeds:
        then an item's audio does not depend on what it is batched with)."""
        if not isinstance(seed, (list, tuple)):
            return self._generator(seed)  # validates it
        seeds = list(seed)
        if len(seeds) != count:
            raise InputError(f"got {count} inputs but {len(seeds)} seeds")
        return [self._generator(s) for s in seeds]

    def _windows(self, durations: Sequence[float | None], *, video: bool = False) -> Windows | None:
        """The window geometry when an item is longer than ``generate.window_seconds``, else ``None``."""
        decoder, defaults = self.model.decoder, self.generate_defaults
        context = defaults.video_context_seconds if video and defaults.video_context_seconds else defaults.context_seconds
        windows = Windows(size=decoder.frames_for(defaults.window_seconds), context=decoder.frames_for(context))
        frames = [decoder.frames_for(d) for d in durations if d is not None]
        if not any(f > windows.size for f in frames):
            return None
        if len(frames) != len(durations):
            raise InputError("audio longer than generate.window_seconds needs a duration for every item")
        return windows

    @torch.no_grad()
    def _codes(self, prompt_for, durations, seed, sampling, windows: Windows | None) -> list[torch.Tensor]:
        """Codebook-1 codes per item, in one pass or window by window (``windows``)."""
        config: SamplingConfig = _evolve(self.generate_defaults.sampling, sampling, "sampling")
        decoder, seq = self.model.decoder, self.model.sequences
        frames = [decoder.frames_for(d) if d is not None else None for d in durations]
        generator = self._generators(seed, len(durations))
        guided = config.guidance_scale != 1.0
        if windows is not None:
            return windowed_codes(self.model, prompt_for, frames, windows, sampling=config, generator=generator,
                                  guided=guided)
        prompts = [prompt_for(i, 0, f or 0) for i, f in enumerate(frames)]
        uncond = [seq.unconditional_audio() for _ in prompts] if guided else None
        return generate_acoustic(self.model, prompts, num_frames=frames, sampling=config,
                                 generator=generator, unconditional=uncond)


@attrs.frozen
class CoarseTokens:
    """What the LLM generated for a batch: codebook-1 codes per item, with the condition the
    refiner reads (caption and/or encoder features) and the duration to trim to."""

    codes: list[torch.Tensor]  # per item (S_i,) long in [0, K)
    captions: list[str | None]
    video: list[torch.Tensor | None]  # per item (N_i, D_enc) video features, or None
    durations: list[float | None]
    windows: Windows | None = None  # set when the codes were made window by window
    video_seconds: list[float | None] | None = None  # each video's duration (to slice features per window)


@attrs.frozen
class VideoSpan:
    """One video's features with the timing that lets a window take the frames of its span."""

    features: torch.Tensor  # (N, D_enc)
    seconds: float  # the video's duration
    code_rate: float  # code frames per second

    def frames(self, start: int, end: int) -> torch.Tensor:
        """The features covering code frames ``[start, end)`` (at least one frame)."""
        n = self.features.shape[0]
        per_second = n / max(self.seconds, 1e-6)
        first = min(n - 1, int(start / self.code_rate * per_second))
        last = max(first + 1, min(n, round(end / self.code_rate * per_second)))
        return self.features[first:last]  # (N_w, D_enc)


def _per_item(duration: float | Sequence[float] | None, count: int) -> list[float | None]:
    if duration is None or isinstance(duration, (int, float)):
        _check_duration(duration)
        return [duration] * count
    values = list(duration)
    if len(values) != count:
        raise InputError(f"got {count} inputs but {len(values)} durations")
    for d in values:
        _check_duration(d)
    return values


def _as_list(value: Any, types: Any, what: str) -> tuple[list, bool]:
    if isinstance(value, types):
        return [value], True
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = list(value)
        if not items:
            raise InputError(f"{what}: got an empty list")
        for item in items:
            if not isinstance(item, types):
                raise InputError(f"{what}: unsupported item {item!r} ({type(item).__name__})")
        return items, False
    raise InputError(f"{what}: unsupported input {value!r} ({type(value).__name__})")


def _check_text(text: str) -> None:
    if not text.strip():
        raise InputError("text is empty; describe the sound to generate")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"text is {len(text)} characters long; at most {MAX_TEXT_CHARS} are accepted")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"text is not valid Unicode at character {exc.start} (a lone surrogate?)") from exc


def _check_duration(duration: float | None) -> None:
    if duration is None:
        return
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration):
        raise InputError(f"duration must be a positive number of seconds, got {duration!r}")
    if not MIN_SECONDS <= duration <= MAX_SECONDS:
        raise InputError(f"duration must be a positive number of seconds from {MIN_SECONDS:g} to "
                         f"{MAX_SECONDS:g}, got {duration!r}")


def _check_audio(audio: Audio) -> None:
    if audio.num_samples == 0:
        raise InputError("audio has no samples")
    if audio.duration > MAX_SECONDS:
        raise InputError(f"audio lasts {audio.duration:.1f} s; at most {MAX_SECONDS:g} s are accepted "
                         "(cut it into shorter clips)")


def _clip_video(video: Video) -> Video:
    """``video`` cut to its first MAX_SECONDS (logged), else unchanged."""
    if video.duration <= MAX_SECONDS:
        return video
    keep = video.times < MAX_SECONDS
    log.warning("video lasts %.1f s; using its first %g s (MAX_SECONDS)", video.duration, MAX_SECONDS)
    return Video(video.frames[keep], video.times[keep], MAX_SECONDS)


def _evolve(config: Any, overrides: Mapping[str, Any], where: str) -> Any:
    if not overrides:
        return config
    from c3llm.core.config import to_mapping

    return from_mapping(type(config), {**to_mapping(config), **overrides}, where=where)
