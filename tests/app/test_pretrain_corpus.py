"""The captioned foundation corpus: the same audio as corpus.py, captions and frames that follow
the events, deterministic, and a disk copy that reads back."""

from __future__ import annotations

import numpy as np
import pytest

from c3llm.app.foundation import KINDS, foundation_clip
from c3llm.app.foundation.annotated import annotated_clip
from c3llm.app.foundation.captions import NOUNS, captions_for
from c3llm.app.foundation.dataset import FoundationDataConfig, read_corpus, write_corpus
from c3llm.app.foundation.frames import render_frames


@pytest.mark.parametrize("index", range(6))
def test_annotated_audio_is_the_corpus_clip(index):
    clip = annotated_clip(5, index, 2.0)
    np.testing.assert_array_equal(clip.audio, foundation_clip(5, index, 2.0))
    assert clip.events and all(e.kind in KINDS for e in clip.events)


def test_harmonic_pitch_is_the_events_fundamental():
    from c3llm.app.foundation.annotated import _peek_pitch
    from c3llm.app.foundation.corpus import _event

    rng = np.random.default_rng(1)
    pitch, _, _ = _peek_pitch(rng, "harmonic", 16000)
    wave = _event(rng, "harmonic", 16000, 16000)
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    peak = np.argmax(spectrum)  # 1 Hz bins: the strongest partial is a multiple of f0
    ratio = peak / pitch
    assert abs(ratio - round(ratio)) < 0.05 * max(1, round(ratio)), (peak, pitch)


def test_captions_name_the_loudest_kind_and_are_deterministic():
    for index in range(10):
        clip = annotated_clip(0, index, 4.0)
        caps = captions_for(clip, 0, index, 3)
        assert caps == captions_for(clip, 0, index, 3)
        assert len(set(caps)) >= 2
        loudest = max(clip.audible_events(), key=lambda e: e.level_db).kind
        nouns = {w for pair in NOUNS[loudest] for w in pair}
        assert all(any(n in c for n in nouns) for c in caps), (loudest, caps)


def test_frames_follow_onsets():
    clip = annotated_clip(0, 3, 4.0)
    frames = render_frames(clip, 0, 3, fps=12.0, size=48)
    assert frames.shape == (48, 48, 48, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, render_frames(clip, 0, 3, fps=12.0, size=48))
    change = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))  # (F-1,)
    onset_frames = {int(np.ceil(e.onset * 12)) for e in clip.audible_events() if e.onset > 0}
    at = [change[k - 1] for k in onset_frames if 0 < k < 48]
    assert at and np.mean(at) > 1.5 * np.median(change)


def test_corpus_round_trip(tmp_path):
    config = FoundationDataConfig(clips=3, seconds=1.0, video_clips=2, fps=8.0, frame_size=32, captions_per_clip=2)
    report = write_corpus(config, tmp_path, progress=False)
    corpus = read_corpus(tmp_path, config)
    assert report["clips"] == 3 and corpus.audio.shape == (3, 16000)
    assert corpus.frames.shape == (2, 8, 32, 32, 3) and corpus.frame_labels.shape[:2] == (2, 8)
    np.testing.assert_allclose(corpus.audio[1].numpy(), foundation_clip(0, 1, 1.0), atol=1 / 32767)
    assert len(corpus.texts()) == 6
