"""The ``prepare`` step: codec codes and condition features for dataset samples, cached.

For every :class:`~c3llm.core.roles.Sample` and every requested kind, :func:`prepare_features`
computes what the :class:`~c3llm.app.features.cache.FeatureCache` does not hold yet:

- ``codes``: the codec's codes ``(Q, S)`` (int16, or int32 for codebooks over 32768 entries)
  of the sample's audio, resampled to the codec's rate and mixed to its channels; the audio
  comes from ``sample.audio_path``, or from the audio track of ``sample.video_path``;
- ``audio``: the audio encoder's features ``(N, D)`` of the same audio;
- ``video``: the video encoder's features ``(N, D)`` of ``sample.video_path``.

Each clip's media are decoded once for all kinds. The run is resumable (entries already in
the cache are verified and reused), and broken or missing media never stop it: they are
skipped, counted and listed in the :class:`PrepareReport`. :func:`load_prepared` reads the
cache back for the trainer.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import attrs
import torch

from c3llm.app.features.cache import FeatureCache
from c3llm.core.errors import (
    C3LLMError,
    CheckpointError,
    InputError,
    MediaError,
    did_you_mean,
)
from c3llm.core.media import Audio, Video, load_audio, load_audio_track, load_video
from c3llm.core.roles.dataset import Sample

log = logging.getLogger(__name__)

KINDS = ("codes", "audio", "video")
#: Bumped when the way media become component inputs changes (part of every cache key).
RECIPE_VERSION = 1
#: Seconds between index flushes during a long run (entries themselves are written at once).
FLUSH_EVERY_SECONDS = 30.0


@attrs.define
class KindCounts:
    """Per-kind outcome counts.

    :ivar computed: entries written in this run (``repaired`` ones included).
    :ivar reused: valid entries found in the cache.
    :ivar repaired: corrupt entries found, discarded and recomputed.
    :ivar failed: samples whose media or computation failed (listed in ``failures``).
    :ivar no_media: samples without media for this kind (e.g. no video in AudioCaps).
    """

    computed: int = 0
    reused: int = 0
    repaired: int = 0
    failed: int = 0
    no_media: int = 0


@attrs.frozen
class PrepareFailure:
    """One sample and kind that could not be prepared, and why."""

    id: str
    kind: str
    reason: str


@attrs.define(kw_only=True)
class PrepareReport:
    """What :func:`prepare_features` did.

    :ivar keys: kind -> extractor key (the cache folder under ``cache_root``).
    :ivar skipped_kinds: kind -> why it was not prepared (the model lacks its component).
    :ivar duplicates: sample ids seen more than once (later occurrences were ignored).
    """

    cache_root: Path
    keys: dict[str, str] = attrs.field(factory=dict)
    counts: dict[str, KindCounts] = attrs.field(factory=dict)
    skipped_kinds: dict[str, str] = attrs.field(factory=dict)
    failures: list[PrepareFailure] = attrs.field(factory=list)
    duplicates: list[str] = attrs.field(factory=list)
    elapsed_seconds: float = 0.0

    def failure_counts(self) -> dict[str, int]:
        """Reason (without the file name) -> number of failures, most common first."""
        counts: dict[str, int] = defaultdict(int)
        for failure in self.failures:
            counts[f"{failure.kind}: {_reason_class(failure.reason)}"] += 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [f"prepare: {self.elapsed_seconds:.1f} s, cache {self.cache_root}"]
        for kind, c in self.counts.items():
            lines.append(
                f"  {kind:<6} computed {c.computed} (repaired {c.repaired}), reused {c.reused}, "
                f"failed {c.failed}, no media {c.no_media}  [{self.keys[kind]}]"
            )
        for kind, why in self.skipped_kinds.items():
            lines.append(f"  {kind:<6} skipped: {why}")
        if self.duplicates:
            lines.append(f"  {len(self.duplicates)} duplicate sample id(s) ignored, e.g. {self.duplicates[:3]}")
        for reason, count in self.failure_counts().items():
            lines.append(f"  failed x{count}: {reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for a run's report file)."""
        data = attrs.asdict(self, recurse=True)
        data["cache_root"] = str(self.cache_root)
        return data


# ---------------------------------------------------------------------------------------
# Which component makes which kind


def extractors(model: Any, kinds: Sequence[str] = KINDS) -> tuple[dict[str, tuple[Any, dict]], dict[str, str]]:
    """kind -> (component, recipe) for the kinds the model can make, and kind -> why not.

    The recipe (how media become the component's input) is part of the cache key.
    """
    kinds = check_kinds(kinds)
    found: dict[str, tuple[Any, dict]] = {}
    missing: dict[str, str] = {}
    encoders = getattr(model, "encoders", None) or {}
    for kind in kinds:
        if kind == "codes":
            codec = getattr(model, "decoder", None)
            if codec is None:
                missing[kind] = "the model has no decoder (codec)"
                continue
            found[kind] = (codec, {"recipe": RECIPE_VERSION, "input": "audio file, else the video's audio track",
                                   "sample_rate": int(codec.sample_rate), "channels": int(codec.channels)})
        elif kind in encoders:
            source = "audio file, else the video's audio track" if kind == "audio" else "decoded video frames"
            found[kind] = (encoders[kind], {"recipe": RECIPE_VERSION, "input": source})
        else:
            missing[kind] = f"the model has no {kind} encoder"
    return found, missing


# ---------------------------------------------------------------------------------------
# prepare


def prepare_features(
    model: Any,
    samples: Iterable[Sample],
    cache_root: str | Path,
    *,
    kinds: Sequence[str] = KINDS,
    batch_size: int = 8,
    progress: bool = True,
    feature_dtype: torch.dtype = torch.float32,
    verify: bool = True,
    jobs: int = 1,
) -> PrepareReport:
    """Compute and cache what is missing for ``samples`` (see module doc).

    :param model: a :class:`~c3llm.method.model.C3LLM` (or anything with ``decoder``,
        ``encoders`` and ``encode_media``); kinds whose component it lacks are skipped and
        named in the report.
    :param feature_dtype: ``torch.float32`` or ``torch.float16`` for stored encoder
        features (an item that overflows float16 is kept in float32).
    :param verify: read back and checksum cached entries before reusing them; a corrupt one
        is recomputed.
    :param jobs: worker processes that decode and encode batches (:mod:`.parallel`); cache
        and report equal a serial run's, and the run stays resumable.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if jobs < 1:
        raise InputError(f"jobs must be >= 1, got {jobs}")
    if feature_dtype not in (torch.float32, torch.float16):
        raise InputError(f"feature_dtype must be torch.float32 or torch.float16, got {feature_dtype}")
    started = time.perf_counter()
    cache_root = Path(cache_root)
    samples, duplicates = unique_samples(samples)
    found, missing = extractors(model, kinds)
    caches = {kind: FeatureCache.for_component(cache_root, kind, component, recipe=recipe)
              for kind, (component, recipe) in found.items()}
    report = PrepareReport(
        cache_root=cache_root, keys={k: c.key for k, c in caches.items()},
        counts={k: KindCounts() for k in caches}, skipped_kinds=missing, duplicates=duplicates,
    )
    for kind, why in missing.items():
        log.warning("prepare: skipping %s features: %s", kind, why)
    if duplicates:
        log.warning("prepare: %d duplicate sample id(s) ignored, e.g. %s", len(duplicates), duplicates[:3])
    work = _Work(model, caches, report, feature_dtype=feature_dtype, verify=verify)
    bar = _progress_bar(len(samples), progress)
    last_flush = time.monotonic()
    with ExitStack() as stack:
        for cache in caches.values():
            stack.enter_context(cache)  # flush the index on exit, also when interrupted
        stack.enter_context(_eval_mode([component for component, _ in found.values()]))
        stack.callback(bar.close)
        batches = [samples[start:start + batch_size] for start in range(0, len(samples), batch_size)]

        def done(batch: Sequence[Sample]) -> None:
            nonlocal last_flush
            bar.update(len(batch))
            if time.monotonic() - last_flush > FLUSH_EVERY_SECONDS:
                for cache in caches.values():
                    cache.flush()
                last_flush = time.monotonic()

        if jobs > 1 and len(batches) > 1:
            from c3llm.app.features.parallel import run_in_processes

            run_in_processes(work, batches, jobs, done)
        else:
            for batch in batches:
                work.run(batch)
                done(batch)
    report.elapsed_seconds = time.perf_counter() - started
    _log_report(report)
    return report


class _Work:
    """One prepare run's per-batch steps: decide (:meth:`plan`), decode and compute
    (:meth:`compute`, which touches neither the cache nor the report, so a worker process can
    run it), write (:meth:`apply`)."""

    def __init__(self, model: Any, caches: Mapping[str, FeatureCache], report: PrepareReport, *,
                 feature_dtype: torch.dtype, verify: bool):
        self.model = model
        self.caches = caches
        self.report = report
        self.feature_dtype = feature_dtype
        self.verify = verify
        self._out: list[tuple[str, str, str, Any]] = []

    def run(self, batch: Sequence[Sample]) -> None:
        self.apply(self.compute(batch, self.plan(batch)))

    def plan(self, batch: Sequence[Sample]) -> dict[str, list[str]]:
        """kind -> ids of ``batch`` to compute (counts reused and repaired entries)."""
        return {kind: [s.id for s in batch if self._needs(kind, s)] for kind in self.caches}

    def compute(self, batch: Sequence[Sample], todo: Mapping[str, list[str]]) -> list[tuple[str, str, str, Any]]:
        """Decode and encode what ``todo`` names: ``[("put", kind, id, entry) | ("fail", kind, id, reason)]``."""
        self._out = []
        audio: dict[str, Audio] = {}
        video: dict[str, Video] = {}
        for sample in batch:
            audio_kinds = [k for k in ("codes", "audio") if sample.id in todo.get(k, ())]
            if audio_kinds:
                self._load(sample, _load_sample_audio, audio, audio_kinds)
            if sample.id in todo.get("video", ()):
                self._load(sample, lambda s: load_video(s.video_path), video, ["video"])
        if todo.get("codes"):
            self._codes([id for id in todo["codes"] if id in audio], audio)
        for modality, loaded in (("audio", audio), ("video", video)):
            if todo.get(modality):
                self._features(modality, [id for id in todo[modality] if id in loaded], loaded)
        return self._out

    def apply(self, outcomes: Sequence[tuple[str, str, str, Any]]) -> None:
        """Write computed entries and record failures, in the order they were made."""
        for action, kind, id, value in outcomes:
            if action == "put":
                self.caches[kind].put(id, value)
                self.report.counts[kind].computed += 1
            else:
                self.report.failures.append(PrepareFailure(id, kind, value))
                self.report.counts[kind].failed += 1
                log.debug("prepare: %s %s failed: %s", id, kind, value)

    # -- deciding -------------------------------------------------------------------------

    def _needs(self, kind: str, sample: Sample) -> bool:
        counts = self.report.counts[kind]
        has_media = sample.video_path is not None if kind == "video" else (
            sample.audio_path is not None or sample.video_path is not None)
        if not has_media:
            counts.no_media += 1
            return False
        cache = self.caches[kind]
        if not cache.has(sample.id):
            return True
        if self.verify:
            try:
                cache.get(sample.id)
            except CheckpointError as exc:
                log.warning("prepare: %s; recomputing it", exc)
                cache.discard(sample.id)
                counts.repaired += 1
                return True
        counts.reused += 1
        return False

    # -- decoding -------------------------------------------------------------------------

    def _load(self, sample: Sample, loader: Callable[[Sample], Any], into: dict, kinds: list[str]) -> None:
        """Decode a sample's media once; a failure counts against every kind that needed it."""
        try:
            into[sample.id] = loader(sample)
        except (MediaError, InputError) as exc:
            for kind in kinds:
                self._fail(sample.id, kind, str(exc))

    # -- computing ------------------------------------------------------------------------

    def _codes(self, ids: list[str], audio: Mapping[str, Audio]) -> None:
        codec = self.model.decoder
        dtype = torch.int16 if codec.cardinality <= 2**15 else torch.int32
        device = codec.device
        ready: dict[str, torch.Tensor] = {}
        for id in ids:
            try:
                ready[id] = audio[id].to(codec.sample_rate, codec.channels).waveform  # (C, T)
            except C3LLMError as exc:
                self._fail(id, "codes", f"cannot convert audio for the codec: {exc}")
        # Clips of equal length are encoded together: padding would change the codes of a
        # clip's last frames, so unequal lengths are never padded into one batch.
        by_length: dict[int, list[str]] = defaultdict(list)
        for id, wav in ready.items():
            by_length[wav.shape[-1]].append(id)

        def encode(group: list[str]) -> list[torch.Tensor]:
            wav = torch.stack([ready[id] for id in group]).to(device)  # (B, C, T)
            with torch.no_grad():
                codes = codec.encode(wav)  # (B, Q, S)
            return [c.to("cpu", dtype) for c in codes]

        for group in by_length.values():
            self._compute("codes", group, encode, lambda id, codes: {"codes": codes})

    def _features(self, modality: str, ids: list[str], media: Mapping[str, Any]) -> None:
        def encode(group: list[str]) -> list[torch.Tensor]:
            return self.model.encode_media(modality, [media[id] for id in group])  # [(N_i, D)]

        self._compute(modality, ids, encode, lambda id, feats: {"features": self._store_dtype(id, feats)})

    def _compute(self, kind: str, ids: list[str], encode: Callable[[list[str]], Sequence[torch.Tensor]],
                 entry: Callable[[str, torch.Tensor], dict[str, torch.Tensor]]) -> None:
        """Run ``encode`` on the group; on a typed error retry item by item so one bad clip
        fails alone. Each result goes to the outcomes :meth:`apply` writes."""
        if not ids:
            return
        try:
            results = list(zip(ids, encode(ids)))
        except C3LLMError as exc:
            if len(ids) == 1:
                self._fail(ids[0], kind, f"{type(exc).__name__}: {exc}")
                return
            log.debug("prepare: batch of %d failed for %s (%s); retrying one by one", len(ids), kind, exc)
            for id in ids:
                self._compute(kind, [id], encode, entry)
            return
        for id, value in results:
            if value.numel() == 0:
                self._fail(id, kind, f"the {kind} extractor returned an empty result {tuple(value.shape)}")
                continue
            if value.is_floating_point() and not torch.isfinite(value).all():
                self._fail(id, kind, f"the {kind} extractor returned non-finite values")
                continue
            self._out.append(("put", kind, id, entry(id, value)))

    def _store_dtype(self, id: str, feats: torch.Tensor) -> torch.Tensor:
        feats = feats.detach().to("cpu", torch.float32)
        if self.feature_dtype == torch.float16:
            half = feats.to(torch.float16)
            if torch.isfinite(half).all():
                return half
            log.debug("prepare: features of %s overflow float16; stored as float32", id)
        return feats

    def _fail(self, id: str, kind: str, reason: str) -> None:
        self._out.append(("fail", kind, id, reason))


def _load_sample_audio(sample: Sample) -> Audio:
    if sample.audio_path is not None:
        return load_audio(sample.audio_path)
    return load_audio_track(sample.video_path)


def check_kinds(kinds: Sequence[str]) -> list[str]:
    if isinstance(kinds, str):
        kinds = [kinds]
    for kind in kinds:
        if kind not in KINDS:
            raise InputError(f"unknown feature kind {kind!r}.{did_you_mean(str(kind), KINDS)} Kinds: {', '.join(KINDS)}")
    return list(dict.fromkeys(kinds))


def unique_samples(samples: Iterable[Sample]) -> tuple[list[Sample], list[str]]:
    seen: set[str] = set()
    unique, duplicates = [], []
    for sample in samples:
        if not isinstance(sample, Sample):
            raise InputError(f"prepare takes c3llm.core.roles.Sample items, got {type(sample).__name__}")
        if sample.id in seen:
            duplicates.append(sample.id)
            continue
        seen.add(sample.id)
        unique.append(sample)
    return unique, duplicates


class _eval_mode:
    """Put modules in eval mode (no dropout, no codebook EMA updates) and restore after."""

    def __init__(self, modules: Sequence[Any]):
        self.modules = [m for m in modules if isinstance(m, torch.nn.Module)]
        self.modes: list[bool] = []

    def __enter__(self) -> None:
        self.modes = [m.training for m in self.modules]
        for m in self.modules:
            m.eval()

    def __exit__(self, *exc: object) -> None:
        for m, mode in zip(self.modules, self.modes):
            m.train(mode)


def _progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm bar on stderr; a no-op one when disabled or stderr is not a terminal."""
    from c3llm.core.progress import progress_bar

    return progress_bar(total, "prepare", unit="clip", enabled=enabled)


def _reason_class(reason: str) -> str:
    """A failure reason without its file path, so equal causes group together."""
    words = [w for w in reason.split() if "/" not in w and "\\" not in w]
    return " ".join(words)[:120]


def _log_report(report: PrepareReport) -> None:
    log.info("%s", report.summary())
    if report.failures:
        log.warning("prepare: %d item(s) failed and were skipped, e.g. %s (%s): %s", len(report.failures),
                    report.failures[0].id, report.failures[0].kind, report.failures[0].reason)
