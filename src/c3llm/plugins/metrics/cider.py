"""The ``cider_d`` metric: CIDEr-D of captions over a test set (the computation, pure Python,
is :mod:`c3llm.scoring.cider`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import attrs

from c3llm.core.config import field, in_range
from c3llm.core.hookspecs import hookimpl
from c3llm.core.roles.metric import Metric
from c3llm.scoring.caption_tokenizer import make_tokenizer
from c3llm.scoring.cider import corpus_cider_d


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
        return {"cider_d": corpus_cider_d(predictions, references, self.tokenize, max_n=self.config.max_n,
                                          sigma=self.config.sigma)}


@hookimpl
def register_metrics(register):
    register("cider_d", CiderD, CiderDConfig, description="CIDEr-D (coco-caption), pure Python")
