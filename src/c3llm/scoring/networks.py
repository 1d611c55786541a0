"""Which audio network a metric config names (``embedder`` + ``embedder_path``), built on demand."""

from __future__ import annotations

from c3llm.core.errors import InputError, UnavailableError
from c3llm.scoring.embedders import PannsCnn14, VGGish
from c3llm.scoring.reference_classifier import ReferenceClassifier

EMBEDDER_CHOICES = ("synth-classifier", "panns-cnn14", "vggish", "clap")


def load_network(name: str, path: str | None, *, need: str, max_seconds: float | None = None):
    """Build the embedder/classifier a metric config names.

    :param need: ``"embedder"`` or ``"classifier"`` (VGGish and CLAP only embed).
    """
    if name == "synth-classifier":
        if path is None:
            raise UnavailableError(
                "the synth-classifier needs embedder_path: a directory written by "
                "c3llm.scoring.reference_classifier.train_reference_classifier"
            )
        return ReferenceClassifier.from_directory(path)
    if name == "panns-cnn14":
        return PannsCnn14.from_checkpoint(path, max_seconds=max_seconds)
    if name in ("vggish", "clap") and need == "classifier":
        raise InputError(f"{name} gives embeddings, not class probabilities; use panns-cnn14 or synth-classifier")
    if name == "vggish":
        return VGGish.from_checkpoint(path)
    if name == "clap":
        raise UnavailableError(
            "the clap embedder is an encoder object, not a file: build the CLAP encoder and call "
            "metric.use_network(EncoderEmbedder(clap_encoder)) before compute()"
        )
    raise InputError(f"unknown embedder {name!r}; choose one of {', '.join(EMBEDDER_CHOICES)}")


def score_name(base: str, network) -> str:
    """``base`` for the metric's reference network, ``base_suffix`` for any other."""
    suffix = getattr(network, "score_suffix", "")
    return f"{base}_{suffix}" if suffix else base
