"""Analytic metrics on the synthetic world, scored against the clips' exact metadata.

Audio (``synth_audio``; predictions: generated :class:`Audio`, references: the clips' metadata
rows from ``metadata.jsonl`` or :class:`~c3llm.core.roles.Sample` objects):

- ``source_acc``: the reference classifier's label equals ``source``;
- ``onset_f1``: detected onsets vs ``onsets`` matched one-to-one within ±50 ms, F1 per clip
  (1 when both are empty), averaged over clips;
- ``pitch_acc``: estimated f0 within one semitone of ``pitch_hz`` (clips with ``pitch_hz``
  null are skipped; no pitch found counts as wrong);
- ``event_count_acc``: number of detected onsets equals ``num_events``.

Captions (``synth_captions``; predictions: generated captions, references: metadata rows):
``caption_source_acc``, ``caption_pitch_acc``, ``caption_count_acc`` — the caption names the
right value of the attribute and no other value of it — and ``caption_attribute_acc`` (all
scored attributes right). Words come from :class:`CaptionVocabulary`, a config table mirroring
the synthetic world's caption generator (source class -> nouns/verbs, pitch class ->
adjectives, event count -> adverbs/numerals).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from c3llm.core.config import field, in_range
from c3llm.core.errors import InputError, UnavailableError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.media import Audio
from c3llm.core.roles.metric import Metric
from c3llm.scoring.signal import detect_onsets, estimate_pitch

log = logging.getLogger(__name__)


def _plurals(*nouns: str) -> tuple[str, ...]:
    return tuple(w for n in nouns for w in (n, n + ("es" if n.endswith(("s", "sh", "ch", "x", "z")) else "s")))


#: source class -> words naming it (nouns with plurals, and verbs that name the source).
DEFAULT_SOURCE_WORDS: dict[str, tuple[str, ...]] = {
    "beep": _plurals("beep", "tone", "bleep") + ("beeps",),
    "chirp": _plurals("chirp", "sweep", "whistle") + ("chirps",),
    "knock": _plurals("knock", "tap", "thud") + ("knocks",),
    "bell": _plurals("bell", "chime", "ding") + ("rings",),
    "drone": _plurals("engine hum", "motor drone", "buzz") + ("drones",),
    "hiss": _plurals("hiss", "noise burst", "whoosh") + ("hisses",),
}
#: pitch class (metadata ``pitch``) -> words.
DEFAULT_PITCH_WORDS: dict[str, tuple[str, ...]] = {
    "low": ("low", "low-pitched", "deep", "low pitch"),
    "mid": ("medium", "mid-pitched", "medium-pitched", "medium pitch"),
    "high": ("high", "high-pitched", "shrill", "high pitch"),
}
#: number of events (as a string key) -> words.
DEFAULT_COUNT_WORDS: dict[str, tuple[str, ...]] = {
    "1": ("once", "a single time", "just once", "a single", "one"),
    "2": ("twice", "two times", "two", "a pair of"),
    "3": ("three times", "thrice", "three"),
    "4": ("four times", "four"),
}


@attrs.frozen(kw_only=True)
class CaptionVocabulary:
    """Attribute value -> words that express it; longer phrases win over words inside them."""

    source: dict[str, tuple[str, ...]] = field(factory=lambda: dict(DEFAULT_SOURCE_WORDS), help="source class -> words")
    pitch: dict[str, tuple[str, ...]] = field(factory=lambda: dict(DEFAULT_PITCH_WORDS), help="pitch class -> words")
    count: dict[str, tuple[str, ...]] = field(factory=lambda: dict(DEFAULT_COUNT_WORDS), help="event count -> words")

    def __attrs_post_init__(self) -> None:
        seen: dict[str, tuple[str, str]] = {}
        for category in ("source", "pitch", "count"):
            for value, words in getattr(self, category).items():
                for w in words:
                    w = w.lower()
                    if w in seen and seen[w] != (category, value):
                        raise ValueError(f"caption word {w!r} is listed under both {seen[w]} and {(category, value)}")
                    seen[w] = (category, value)

    def mentions(self, caption: str) -> dict[str, set[str]]:
        """Category -> set of values the caption names (longest phrases first, no overlaps)."""
        entries = sorted(
            ((w.lower(), cat, val) for cat in ("source", "pitch", "count")
             for val, words in getattr(self, cat).items() for w in words),
            key=lambda e: -len(e[0]),
        )
        text = caption.lower()
        taken = np.zeros(len(text) + 1, dtype=bool)
        found: dict[str, set[str]] = {"source": set(), "pitch": set(), "count": set()}
        for word, cat, val in entries:
            for m in re.finditer(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text):
                if not taken[m.start() : m.end()].any():
                    taken[m.start() : m.end()] = True
                    found[cat].add(val)
        return found


def match_count(detected: Sequence[float], reference: Sequence[float], tolerance: float) -> int:
    """Largest one-to-one matching of sorted times within ``tolerance`` (greedy is optimal in 1-D)."""
    d, r = sorted(detected), sorted(reference)
    i = j = hits = 0
    while i < len(d) and j < len(r):
        if abs(d[i] - r[j]) <= tolerance:
            hits, i, j = hits + 1, i + 1, j + 1
        elif d[i] < r[j]:
            i += 1
        else:
            j += 1
    return hits


def onset_f1(detected: Sequence[float], reference: Sequence[float], tolerance: float = 0.05) -> float:
    """F1 of detected vs reference onset times (s); 1.0 when both are empty."""
    if not detected and not reference:
        return 1.0
    hits = match_count(detected, reference, tolerance)
    return 2.0 * hits / (len(detected) + len(reference))


def within_semitones(estimate: float | None, target: float, tolerance: float = 1.0) -> bool:
    """Whether ``estimate`` (Hz) is within ``tolerance`` semitones of ``target`` (Hz)."""
    if estimate is None or estimate <= 0 or target <= 0:
        return False
    return abs(12.0 * math.log2(estimate / target)) <= tolerance


def metadata_of(reference: Any) -> Mapping[str, Any]:
    """A metadata row from a mapping or a :class:`~c3llm.core.roles.Sample`."""
    if isinstance(reference, Mapping):
        return reference
    meta = getattr(reference, "metadata", None)
    if isinstance(meta, Mapping):
        row = dict(meta)
        if "source" not in row and getattr(reference, "label", None):
            row["source"] = reference.label
        return row
    raise InputError(
        f"synthetic-world metrics take metadata rows (dicts from metadata.jsonl) or Samples as references, "
        f"got {type(reference).__name__}"
    )


def _require(row: Mapping[str, Any], key: str) -> Any:
    if key not in row:
        raise InputError(f"metadata row {row.get('id', '?')!r} has no {key!r}; is it a synthetic-world metadata.jsonl row?")
    return row[key]


@attrs.frozen(kw_only=True)
class SyntheticAudioConfig:
    classifier_path: str | None = field(None, path=True, help="reference-classifier directory (for source_acc)")
    source_accuracy: bool = field(True, help="report source_acc (needs classifier_path)")
    onset_tolerance: float = field(0.05, validator=in_range(0.0, low_open=True), help="onset match window (s)")
    onset_delta: float = field(0.3, validator=in_range(0.0), help="onset peak-picking threshold")
    onset_hop_length: int = field(256, validator=in_range(1), help="onset analysis hop at 22.05 kHz (finer than librosa's 512)")
    onset_n_fft: int = field(1024, validator=in_range(16), help="onset analysis frame at 22.05 kHz")
    pitch_tolerance_semitones: float = field(1.0, validator=in_range(0.0, low_open=True), help="pitch accuracy tolerance")
    pitch_fmin: float = field(40.0, validator=in_range(1.0), help="lowest f0 searched (Hz)")
    pitch_fmax: float = field(4000.0, validator=in_range(1.0), help="highest f0 searched (Hz)")


class SyntheticAudioMetrics(Metric):
    """Source, onset, pitch and event-count accuracy of generated audio against metadata."""

    task: ClassVar[str] = "audio"
    #: references are metadata rows, not Audio.
    reference_kind: ClassVar[str] = "metadata"
    higher_is_better: ClassVar[dict[str, bool]] = {
        "source_acc": True, "onset_f1": True, "pitch_acc": True, "event_count_acc": True,
    }
    analysis_rate: ClassVar[int] = 22050

    def __init__(self, config: SyntheticAudioConfig):
        self.config = config
        self._classifier: Any = None

    def use_network(self, classifier: Any) -> None:
        """Attach a classifier (``predict(audios) -> labels``) instead of loading ``classifier_path``."""
        self._classifier = classifier

    @property
    def classifier(self) -> Any:
        if self._classifier is None:
            if self.config.classifier_path is None:
                raise UnavailableError(
                    "source_acc needs the synthetic world's reference classifier: set classifier_path to a "
                    "directory written by train_reference_classifier, or source_accuracy = false"
                )
            from c3llm.scoring.reference_classifier import ReferenceClassifier

            self._classifier = ReferenceClassifier.from_directory(self.config.classifier_path)
        return self._classifier

    def compute(self, predictions: Sequence[Audio], references: Sequence[Any]) -> dict[str, float]:
        if len(predictions) != len(references) or not predictions:
            raise InputError(f"synth_audio: {len(predictions)} generated clips but {len(references)} metadata rows")
        c = self.config
        rows = [metadata_of(r) for r in references]
        out: dict[str, float] = {}
        if c.source_accuracy:
            labels = self.classifier.predict(list(predictions))
            out["source_acc"] = float(np.mean([p == _require(r, "source") for p, r in zip(labels, rows)]))
        f1s, counts, pitches = [], [], []
        for audio, row in zip(predictions, rows):
            wav = audio.to(self.analysis_rate, channels=1).waveform[0].double().numpy()
            detected = (detect_onsets(wav, self.analysis_rate, delta=c.onset_delta,
                                     hop_length=c.onset_hop_length, n_fft=c.onset_n_fft) / self.analysis_rate).tolist()
            f1s.append(onset_f1(detected, list(_require(row, "onsets")), c.onset_tolerance))
            counts.append(len(detected) == int(_require(row, "num_events")))
            target = _require(row, "pitch_hz")
            if target is not None:
                f0 = estimate_pitch(wav, self.analysis_rate, fmin=c.pitch_fmin, fmax=c.pitch_fmax)
                pitches.append(within_semitones(f0, float(target), c.pitch_tolerance_semitones))
        out["onset_f1"] = float(np.mean(f1s))
        out["event_count_acc"] = float(np.mean(counts))
        if pitches:
            out["pitch_acc"] = float(np.mean(pitches))
        else:
            log.info("synth_audio: no reference clip has a pitch (all pitch_hz null); pitch_acc not reported")
        return out


@attrs.frozen(kw_only=True)
class SyntheticCaptionConfig:
    vocabulary: CaptionVocabulary = field(factory=CaptionVocabulary, help="attribute value -> caption words")
    pitch_key: str = field("attributes.pitch",
                           help="metadata key (dotted for nested) holding the pitch class (low/mid/high)")


class SyntheticCaptionMetrics(Metric):
    """Whether generated captions name the clip's source, pitch class and event count."""

    task: ClassVar[str] = "caption"
    reference_kind: ClassVar[str] = "metadata"
    higher_is_better: ClassVar[dict[str, bool]] = {
        "caption_source_acc": True, "caption_pitch_acc": True, "caption_count_acc": True, "caption_attribute_acc": True,
    }

    def __init__(self, config: SyntheticCaptionConfig):
        self.config = config

    def judge(self, caption: str, reference: Any) -> dict[str, bool]:
        """Attribute -> correct, for the attributes the metadata defines."""
        row = metadata_of(reference)
        said = self.config.vocabulary.mentions(caption)
        truth = {"source": str(_require(row, "source")), "count": str(int(_require(row, "num_events")))}
        pitch = _lookup(row, self.config.pitch_key)
        if pitch is not None:  # noise sources have a pitch class too
            truth["pitch"] = str(pitch)
        return {cat: said[cat] == {value} for cat, value in truth.items()}

    def compute(self, predictions: Sequence[str], references: Sequence[Any]) -> dict[str, float]:
        if len(predictions) != len(references) or not predictions:
            raise InputError(f"synth_captions: {len(predictions)} captions but {len(references)} metadata rows")
        verdicts = [self.judge(p, r) for p, r in zip(predictions, references)]
        out = {"caption_attribute_acc": float(np.mean([all(v.values()) for v in verdicts]))}
        for cat in ("source", "pitch", "count"):
            scored = [v[cat] for v in verdicts if cat in v]
            if scored:
                out[f"caption_{cat}_acc"] = float(np.mean(scored))
        return out


@hookimpl
def register_metrics(register):
    register("synth_audio", SyntheticAudioMetrics, SyntheticAudioConfig,
             description="synthetic world: source/onset/pitch/event-count accuracy of generated audio")
    register("synth_captions", SyntheticCaptionMetrics, SyntheticCaptionConfig,
             description="synthetic world: source/pitch/count words of generated captions")


def _lookup(row: Any, dotted: str) -> Any:
    """``row["a"]["b"]`` for ``"a.b"``; ``None`` when any step is missing."""
    value = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
