"""Reference points for the evaluation table, built from the training split only.

A score means little without something to set it against. Two baselines per task, neither of
which ever sees a test clip's target:

- **chance**: for each test item, a training clip picked at random (seeded) — its audio for
  T2A/V2A, one of its captions for A2T. Scores what the training distribution gives for free
  (FD in particular is low for it: the clips are real audio, just unrelated to the condition).
- **retrieval**: the best training item for the condition by a simple rule — for T2A the
  training clip whose captions share the most words with the test caption; for A2T the
  caption of the training clip whose audio embedding (reference network) is nearest the test
  audio's. A model that does not beat retrieval has not learned to generate.

The functions return indices into the training list; the runner turns them into audio or text.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch

from c3llm.core.errors import InputError
from c3llm.core.media import Audio
from c3llm.scoring.caption_tokenizer import ptb_tokenize


def seeded_rng(seed: int, *scope: str) -> random.Random:
    """A random stream fixed by the run seed and a scope (split, task), so that baselines are
    reproducible and independent of each other. (``random.Random`` seeds strings with SHA-512,
    unaffected by ``PYTHONHASHSEED``.)"""
    return random.Random(":".join([str(seed), *scope]))


def chance_indices(num_queries: int, num_train: int, rng: random.Random) -> list[int]:
    """One training index per query, uniformly at random (with replacement)."""
    if num_train == 0:
        raise InputError("the chance baseline needs training clips: set [data.train]")
    return [rng.randrange(num_train) for _ in range(num_queries)]


def chance_captions(num_queries: int, train_captions: Sequence[Sequence[str]], rng: random.Random) -> list[str]:
    """A random caption of a random training clip for each query."""
    pool = [i for i, caps in enumerate(train_captions) if caps]
    if not pool:
        raise InputError("the chance caption baseline needs training clips with captions")
    return [rng.choice(list(train_captions[rng.choice(pool)])) for _ in range(num_queries)]


def caption_words(text: str) -> frozenset[str]:
    """The distinct PTB tokens of a caption (lower-cased, punctuation dropped)."""
    return frozenset(ptb_tokenize(text))


def retrieve_by_caption(queries: Sequence[str], train_captions: Sequence[Sequence[str]],
                        rng: random.Random) -> list[int]:
    """For each query caption, the training clip with the largest number of distinct words in
    common with it (the best of the clip's captions); ties are broken at random (seeded)."""
    train_words = [[caption_words(c) for c in caps] for caps in train_captions]
    if not any(train_words):
        raise InputError("the retrieval baseline needs training clips with captions")
    picks = []
    for query in queries:
        words = caption_words(query)
        overlap = np.array([max((len(words & w) for w in clip), default=-1) for clip in train_words])
        best = np.flatnonzero(overlap == overlap.max())
        picks.append(int(best[rng.randrange(len(best))]))
    return picks


def nearest_neighbours(queries: np.ndarray, keys: np.ndarray) -> list[int]:
    """Index of the Euclidean-nearest key row for each query row: ``(N, D), (M, D) -> N``."""
    queries, keys = np.asarray(queries, dtype=np.float64), np.asarray(keys, dtype=np.float64)
    if queries.ndim != 2 or keys.ndim != 2 or queries.shape[1] != keys.shape[1] or len(keys) == 0:
        raise InputError(f"nearest neighbours need (N, D) queries and (M, D) keys, got {queries.shape} and {keys.shape}")
    distances = (queries**2).sum(1)[:, None] - 2.0 * queries @ keys.T + (keys**2).sum(1)[None, :]  # (N, M)
    return distances.argmin(axis=1).tolist()


def fit_duration(audio: Audio, duration: float) -> Audio:
    """``audio`` cut or zero-padded to ``duration`` seconds, so a baseline clip lasts as long as
    the reference it stands in for (as generated audio does)."""
    length = max(1, round(duration * audio.sample_rate))
    wav = audio.waveform[:, :length]  # (C, <=length)
    if wav.shape[1] < length:
        wav = torch.nn.functional.pad(wav, (0, length - wav.shape[1]))
    return Audio(wav.contiguous(), audio.sample_rate)
