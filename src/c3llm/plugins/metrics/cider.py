"""CIDEr-D (Vedantam et al. 2015, the coco-caption variant), in pure Python.

Per caption: tf-idf vectors of its 1..4-grams, idf from the document frequency of each n-gram
over the **test set's references** (one document per clip); cosine similarity to each
reference with the candidate's weights clipped to the reference's, times a Gaussian penalty
on the length difference (sigma 6); mean over n, mean over references, x10. As in
``pycocoevalcap``'s scorer, the "length" the penalty compares is the number of bigrams.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import ClassVar, Literal

import attrs
import numpy as np

from c3llm.core.config import field, in_range
from c3llm.core.errors import InputError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.roles.metric import Metric
from c3llm.scoring.caption_tokenizer import make_tokenizer

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


@attrs.frozen(kw_only=True)
class CiderDConfig:
    tokenizer: Literal["python", "java-ptb"] = field(
        "python", help="'python': built-in PTB-style rules; 'java-ptb': Stanford PTBTokenizer via Java (needs ptb_jar)"
    )
    ptb_jar: str | None = field(None, path=True, help="stanford-corenlp-*.jar for tokenizer='java-ptb'")
    java: str = field("java", help="Java executable for tokenizer='java-ptb'")
    max_n: int = field(4, validator=in_range(1, 8), help="largest n-gram order")
    sigma: float = field(6.0, validator=in_range(0.0, low_open=True), help="std of the Gaussian length penalty")


class CiderD(Metric):
    """CIDEr-D over a test set: predictions are captions, references lists of captions."""

    task: ClassVar[str] = "caption"
    higher_is_better: ClassVar[dict[str, bool]] = {"cider_d": True}

    def __init__(self, config: CiderDConfig):
        self.config = config

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        c = self.config
        return make_tokenizer(c.tokenizer, c.ptb_jar, c.java)(list(texts))

    def compute(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
        if len(predictions) != len(references):
            raise InputError(f"cider_d: {len(predictions)} predictions but {len(references)} reference sets")
        refs = [[references[i]] if isinstance(references[i], str) else list(references[i]) for i in range(len(references))]
        flat = self.tokenize(list(predictions) + [r for rs in refs for r in rs])
        cands, rest = flat[: len(predictions)], flat[len(predictions) :]
        ref_tokens, pos = [], 0
        for rs in refs:
            ref_tokens.append(rest[pos : pos + len(rs)])
            pos += len(rs)
        score, _ = cider_d(cands, ref_tokens, n=self.config.max_n, sigma=self.config.sigma)
        return {"cider_d": score}


@hookimpl
def register_metrics(register):
    register("cider_d", CiderD, CiderDConfig, description="CIDEr-D (coco-caption), pure Python")
