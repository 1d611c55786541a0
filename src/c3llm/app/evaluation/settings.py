"""The ``[evaluate]`` section of a run config."""

from __future__ import annotations

from typing import Any

import attrs

from c3llm.core.config import field, in_range
from c3llm.scoring.reference_classifier import ReferenceTrainingConfig


@attrs.frozen(kw_only=True)
class EvaluateSection:
    """The ``[evaluate]`` section: networks and tools behind the metrics, report size."""

    reference_classifier: ReferenceTrainingConfig = field(
        factory=ReferenceTrainingConfig,
        help="training of the reference classifier behind the *_synth scores (labelled training data)")
    panns_checkpoint: str | None = field(
        None, path=True, help="PANNs CNN14 checkpoint (.pth/.safetensors): enables fd, kl, mkl, isc")
    vggish_checkpoint: str | None = field(
        None, path=True, help="torchvggish checkpoint (.pth/.safetensors): enables fad")
    spice_jar: str | None = field(
        None, path=True, help="spice-1.0.jar (CoreNLP 3.6.0 jars in lib/ beside it): enables spice, spider")
    clap_checkpoint: str | None = field(
        None, path=True, help="a transformers CLAP directory (e.g. the pretrain stage's {out_dir}/foundation/clap): "
                              "T2A outputs get the CLAP score (cosine with their prompt) as clap_score_<which>")
    java: str = field("java", help="Java executable for SPICE")
    isc_splits: int = field(10, validator=in_range(1), help="ISc splits (fewer when a set has fewer clips)")
    num_examples: int = field(3, validator=in_range(0),
                              help="clips per split shown in the report (spectrograms, playable samples)")
    metrics: dict[str, dict[str, Any]] = field(
        factory=dict, help="config overrides per metric, e.g. {synth_audio = {pitch_fmin = 80.0}, cider_d = {sigma = 6.0}}")
