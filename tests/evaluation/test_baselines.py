"""Baselines: seeded, training-data-only picks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from c3llm.app.evaluation import baselines
from c3llm.core.errors import InputError
from c3llm.core.media import Audio

TRAIN_CAPTIONS = [
    ["A loud beep sounds twice", "Two loud beeps"],
    ["A deep bell rings once"],
    ["A quiet hiss", "Soft noise burst heard once"],
]


def test_chance_is_seeded_and_in_range():
    a = baselines.chance_indices(50, 3, baselines.seeded_rng(7, "test", "chance"))
    b = baselines.chance_indices(50, 3, baselines.seeded_rng(7, "test", "chance"))
    c = baselines.chance_indices(50, 3, baselines.seeded_rng(8, "test", "chance"))
    assert a == b and a != c and set(a) == {0, 1, 2}
    captions = baselines.chance_captions(20, TRAIN_CAPTIONS, baselines.seeded_rng(0, "x"))
    assert all(any(cap in caps for caps in TRAIN_CAPTIONS) for cap in captions)
    with pytest.raises(InputError, match="needs training clips"):
        baselines.chance_indices(3, 0, baselines.seeded_rng(0))


def test_retrieval_by_caption_takes_the_clip_sharing_most_words():
    rng = baselines.seeded_rng(0, "retrieval")
    picks = baselines.retrieve_by_caption(["The bell rings, deep and once", "A burst of noise, once",
                                           "two beeps, loud"], TRAIN_CAPTIONS, rng)
    assert picks == [1, 2, 0]
    assert baselines.caption_words("Two LOUD beeps.") == {"two", "loud", "beeps"}


def test_nearest_neighbours_and_fit_duration():
    keys = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    assert baselines.nearest_neighbours(np.array([[9.0, 1.0], [1.0, 8.0], [0.1, 0.1]]), keys) == [1, 2, 0]
    with pytest.raises(InputError, match=r"\(N, D\) queries"):
        baselines.nearest_neighbours(np.zeros((2, 3)), keys)
    clip = Audio(torch.ones(1, 800), 800)  # 1 s
    longer = baselines.fit_duration(clip, 1.5)
    shorter = baselines.fit_duration(clip, 0.25)
    assert longer.num_samples == 1200 and float(longer.waveform[0, 900]) == 0.0
    assert shorter.num_samples == 200 and float(shorter.waveform.min()) == 1.0
