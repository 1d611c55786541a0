"""Captions of the synthetic world: varied wording, every attribute named, mappable back."""

from __future__ import annotations

import doctest

import numpy as np

from c3llm.plugins.datasets.synthetic import WorldConfig, captions
from c3llm.plugins.datasets.synthetic.captions import (
    VOCABULARY,
    attributes_from_caption,
    make_captions,
)
from c3llm.plugins.datasets.synthetic.scene import plan_world


def expected(clip) -> dict:
    truth = {"source": clip.source, "pitch": clip.pitch, "count": clip.num_events, "loudness": clip.loudness}
    if clip.direction is not None:
        truth["direction"] = clip.direction
    return truth


def test_every_caption_maps_back_to_its_clip_attributes():
    # planning samples attributes and captions without rendering media: cheap for many clips
    clips = plan_world(WorldConfig(seed=1, num_train=400, num_test=0, num_test_novel=50))
    for clip in clips:
        for caption in clip.captions:
            assert attributes_from_caption(caption) == expected(clip), caption


def test_captions_of_a_clip_are_distinct_and_varied():
    clips = plan_world(WorldConfig(seed=2, num_train=200, num_test=0, num_test_novel=0))
    assert all(len(set(c.captions)) == len(c.captions) == 5 for c in clips)
    all_captions = [text for c in clips for text in c.captions]
    assert len(set(all_captions)) > 0.8 * len(all_captions)
    words = {w for text in all_captions for w in text.lower().replace(",", " ").split()}
    for category in ("source", "pitch", "loudness"):
        used = {value for value, phrases in VOCABULARY[category].items() for p in phrases if p in words}
        assert used == set(VOCABULARY[category]), category  # every value is actually worded


def test_vocabulary_is_unambiguous():
    owner: dict[str, tuple] = {}
    for category, table in VOCABULARY.items():
        for value, phrases in table.items():
            for phrase in phrases:
                assert owner.setdefault(phrase, (category, value)) == (category, value), phrase
    assert set(VOCABULARY["count"]) == {1, 2, 3, 4}
    assert set(VOCABULARY["pitch"]) == {"low", "mid", "high"}
    assert set(VOCABULARY["loudness"]) == {"quiet", "loud"}


def test_longer_phrases_win_and_unknown_words_are_ignored():
    assert attributes_from_caption("A bell rings twice, loudly") == {
        "count": 2, "loudness": "loud", "source": "bell"}
    assert attributes_from_caption("three times, a deep whoosh blows softly") == {
        "count": 3, "loudness": "quiet", "pitch": "low", "source": "hiss"}
    assert attributes_from_caption("A high-pitched rising chirp") == {
        "direction": "up", "pitch": "high", "source": "chirp"}
    assert attributes_from_caption("birds singing in the rain") == {}


def test_articles_agree_with_the_next_word():
    rng = np.random.default_rng(0)
    texts = [t for _ in range(50) for t in make_captions(
        source="drone", pitch="high", count=1, loudness="loud", direction=None, num_captions=12, rng=rng)]
    joined = " ".join(t.lower() for t in texts)
    assert " a engine" not in joined and "an engine" in joined


def test_docstring_example():
    assert doctest.testmod(captions).failed == 0
