"""CIDEr-D (Vedantam et al. 2015, the coco-caption variant), in pure Python: the score the
``cider_d`` metric reports and SPIDEr averages with SPICE.

Per caption: tf-idf vectors of its 1..4-grams, idf from the document frequency of each n-gram
over the **test set's references** (one document per clip); cosine similarity to each
reference with the candidate's weights clipped to the reference's, times a Gaussian penalty
on the length difference (sigma 6); mean over n, mean over references, x10. As in
``pycocoevalcap``'s scorer, the "length" the penalty compares is the number of bigrams.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from c3llm.core.errors import InputError

NGram = tuple[str, ...]


def ngram_counts(tokens: Sequence[str], n: int = 4) -> Counter[NGram]:
    """Counts of every 1..n-gram of ``tokens``."""
    counts: Counter[NGram] = Counter()
    for k in range(1, n + 1):
        for i in range(len(tokens) - k + 1):
            counts[tuple(tokens[i : i + k])] += 1
    return counts


def cider_d(
    candidates: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    *, n: int = 4, sigma: float = 6.0,
) -> tuple[float, np.ndarray]:
    """CIDEr-D of tokenised captions.

    :param candidates: one token list per clip.
    :param references: per clip, its reference token lists (at least one).
    :return: (corpus score = mean over clips, per-clip scores ``(N,)``).
    """
    if len(candidates) != len(references):
        raise InputError(f"cider_d: {len(candidates)} candidates but {len(references)} reference sets")
    if not candidates:
        raise InputError("cider_d: no captions to score")
    for i, refs in enumerate(references):
        if not refs:
            raise InputError(f"cider_d: clip {i} has no reference caption")
    cand_counts = [ngram_counts(c, n) for c in candidates]
    ref_counts = [[ngram_counts(r, n) for r in refs] for refs in references]

    doc_freq: Counter[NGram] = Counter()
    for refs in ref_counts:
        doc_freq.update({g for counts in refs for g in counts})
    log_num_docs = math.log(float(len(references)))

    def tfidf(counts: Counter[NGram]) -> tuple[list[dict[NGram, float]], np.ndarray, int]:
        vec: list[dict[NGram, float]] = [defaultdict(float) for _ in range(n)]
        norm = np.zeros(n)
        length = 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            vec[k][gram] = tf * (log_num_docs - math.log(max(1.0, doc_freq[gram])))
            norm[k] += vec[k][gram] ** 2
            if k == 1:  # coco-caption counts bigrams as the length
                length += tf
        return vec, np.sqrt(norm), length

    scores = np.zeros(len(candidates))
    for i, (cand, refs) in enumerate(zip(cand_counts, ref_counts)):
        vec_c, norm_c, len_c = tfidf(cand)
        total = np.zeros(n)
        for ref in refs:
            vec_r, norm_r, len_r = tfidf(ref)
            penalty = math.exp(-((len_c - len_r) ** 2) / (2 * sigma**2))
            for k in range(n):
                dot = sum(min(w, vec_r[k].get(g, 0.0)) * vec_r[k].get(g, 0.0) for g, w in vec_c[k].items())
                if norm_c[k] != 0 and norm_r[k] != 0:
                    dot /= norm_c[k] * norm_r[k]
                total[k] += dot * penalty
        scores[i] = total.mean() / len(refs) * 10.0
    return float(scores.mean()), scores


def corpus_cider_d(predictions: Sequence[str], references: Sequence[str | Sequence[str]],
                   tokenize: Callable[[list[str]], list[list[str]]], *, max_n: int = 4, sigma: float = 6.0) -> float:
    """CIDEr-D of caption ``predictions`` against their reference sets (a string counts as a
    set of one); everything is tokenised in one ``tokenize`` call."""
    if len(predictions) != len(references):
        raise InputError(f"cider_d: {len(predictions)} predictions but {len(references)} reference sets")
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    flat = tokenize(list(predictions) + [r for rs in refs for r in rs])
    cands, rest = flat[: len(predictions)], flat[len(predictions):]
    ref_tokens, pos = [], 0
    for rs in refs:
        ref_tokens.append(rest[pos: pos + len(rs)])
        pos += len(rs)
    return cider_d(cands, ref_tokens, n=max_n, sigma=sigma)[0]
