"""Base for metrics computed on the outputs of an audio network (FD, KL, ISc, MKL).

The network is named by the metric config (``embedder`` + ``embedder_path``) and loaded on first
use, or attached as an object with :meth:`NetworkMetric.use_network` (e.g. an
:class:`~c3llm.scoring.embedders.EncoderEmbedder` around a CLAP encoder).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from c3llm.core.roles.metric import Metric
from c3llm.scoring.networks import load_network, score_name


class NetworkMetric(Metric):
    """A metric whose config has ``embedder`` and ``embedder_path``; ``needs`` is
    ``"embedder"`` or ``"classifier"``."""

    needs: ClassVar[str]

    def __init__(self, config: Any):
        self.config = config
        self._network: Any = None

    def use_network(self, network: Any) -> None:
        """Attach an already-built embedder/classifier instead of loading the configured one."""
        method = "embed" if self.needs == "embedder" else "logits"
        if not callable(getattr(network, method, None)):
            from c3llm.core.errors import InputError

            raise InputError(f"{type(self).__name__} needs an object with .{method}(audios); got {type(network).__name__}")
        self._network = network

    @property
    def network(self) -> Any:
        """The embedder/classifier, loaded from the config on first use."""
        if self._network is None:
            self._network = load_network(self.config.embedder, self.config.embedder_path, need=self.needs)
        return self._network

    def key(self, base: str) -> str:
        """Score name for ``base`` under the current network (``kl`` or ``kl_synth``)."""
        return score_name(base, self.network)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``log softmax`` of ``(N, C)`` logits, numerically stable."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
