"""Analytic metrics on the synthetic world: audio against metadata, caption attribute words."""

from __future__ import annotations

import numpy as np
import pytest
from metric_helpers import audio, tone_events

from c3llm.core.config import from_mapping
from c3llm.core.errors import ConfigError, InputError, UnavailableError
from c3llm.plugins.metrics.synthetic import (
    CaptionVocabulary,
    SyntheticAudioConfig,
    SyntheticAudioMetrics,
    SyntheticCaptionConfig,
    SyntheticCaptionMetrics,
    onset_f1,
    within_semitones,
)


def row(**kw):
    """A metadata row as the synthetic world writes it (pitch class under ``attributes``)."""
    pitch = kw.pop("pitch", "mid")
    base = {"id": "c0", "split": "test", "source": "beep", "attributes": {"pitch": pitch}, "pitch_hz": 440.0,
            "num_events": 2, "onsets": [0.2, 0.6], "loudness_db": -12.0, "duration": 1.0}
    base.update(kw)
    return base


def test_onset_f1_and_semitones():
    assert onset_f1([0.21, 0.64], [0.2, 0.6]) == 1.0
    assert onset_f1([0.21, 0.7], [0.2, 0.6]) == pytest.approx(0.5)
    assert onset_f1([], []) == 1.0 and onset_f1([0.1], []) == 0.0
    assert onset_f1([0.2, 0.22], [0.2]) == pytest.approx(2 / 3)  # one-to-one matching
    assert within_semitones(440 * 2 ** (0.9 / 12), 440) and not within_semitones(440 * 2 ** (1.1 / 12), 440)
    assert not within_semitones(None, 440)


def test_audio_metrics_against_metadata():
    class FakeClassifier:
        def predict(self, audios):
            return ["beep", "knock"]

    metric = SyntheticAudioMetrics(SyntheticAudioConfig())
    metric.use_network(FakeClassifier())
    right = audio(tone_events([0.2, 0.6], 440.0), 16000)
    wrong = audio(tone_events([0.3], 700.0), 16000)
    out = metric.compute([right, wrong], [row(), row(id="c1")])
    assert out == {"source_acc": 0.5, "onset_f1": pytest.approx(0.5 * (1.0 + 0.0)), "event_count_acc": 0.5,
                   "pitch_acc": 0.5}
    # a noise source (pitch_hz null) is left out of pitch_acc
    out = metric.compute([right, wrong], [row(), row(id="c1", source="hiss", pitch_hz=None)])
    assert out["pitch_acc"] == 1.0


def test_audio_metrics_need_a_classifier_or_opt_out():
    with pytest.raises(UnavailableError, match="classifier_path"):
        SyntheticAudioMetrics(SyntheticAudioConfig()).compute([audio(np.zeros(1600), 16000)], [row()])
    out = SyntheticAudioMetrics(SyntheticAudioConfig(source_accuracy=False)).compute(
        [audio(tone_events([0.2, 0.6], 440.0), 16000)], [row()])
    assert "source_acc" not in out and out["event_count_acc"] == 1.0
    with pytest.raises(InputError, match="metadata rows"):
        SyntheticAudioMetrics(SyntheticAudioConfig(source_accuracy=False)).compute(
            [audio(np.zeros(1600), 16000)], [audio(np.zeros(1600), 16000)])


def test_caption_attributes():
    metric = SyntheticCaptionMetrics(SyntheticCaptionConfig())
    captions = [
        "A loud medium beep sounds twice",  # all right
        "Three quiet high-pitched tones",  # wrong pitch and count
        "A knock and a beep, twice",  # two sources named: not right
        "a hiss is heard once",  # noise source: pitch word absent -> wrong pitch
    ]
    refs = [row(), row(), row(), row(source="hiss", pitch="low", pitch_hz=None, num_events=1)]
    out = metric.compute(captions, refs)
    assert out["caption_source_acc"] == pytest.approx(3 / 4)
    assert out["caption_count_acc"] == pytest.approx(3 / 4)
    assert out["caption_pitch_acc"] == pytest.approx(1 / 4)
    assert out["caption_attribute_acc"] == pytest.approx(1 / 4)


def test_vocabulary_is_configurable_and_checked():
    vocab = CaptionVocabulary()
    assert vocab.mentions("three times, a shrill whistle") == {"source": {"chirp"}, "pitch": {"high"}, "count": {"3"}}
    custom = from_mapping(SyntheticCaptionConfig, {"vocabulary": {"source": {"dog": ["dog", "dogs", "barks"]}}})
    assert custom.vocabulary.mentions("a dog barks twice")["source"] == {"dog"}
    with pytest.raises(ConfigError, match="listed under both"):
        from_mapping(SyntheticCaptionConfig, {"vocabulary": {"source": {"a": ["tone"], "b": ["tone"]}}})


def test_default_vocabulary_reads_the_synthetic_worlds_own_captions():
    captions = pytest.importorskip("c3llm.plugins.datasets.synthetic.captions")
    metric = SyntheticCaptionMetrics(SyntheticCaptionConfig())
    rng = np.random.default_rng(0)
    texts, rows = [], []
    for source in ("beep", "chirp", "knock", "bell", "drone", "hiss"):
        for pitch in ("low", "mid", "high"):
            for count in (1, 2, 3, 4):
                direction = "up" if source == "chirp" else None
                for text in captions.make_captions(source=source, pitch=pitch, count=count, loudness="loud",
                                                   direction=direction, num_captions=4, rng=rng):
                    texts.append(text)
                    rows.append(row(source=source, pitch=pitch, num_events=count))
    assert metric.compute(texts, rows)["caption_attribute_acc"] == 1.0
