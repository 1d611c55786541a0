"""The audio networks behind FD / KL / MKL / ISc in an evaluation run: the reference
classifier trained on the training split's labels, and PANNs CNN14 / VGGish when the
``[evaluate]`` section names their checkpoints."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from c3llm.app.evaluation.settings import EvaluateSection
from c3llm.core.media import Audio, load_audio

log = logging.getLogger(__name__)


PANNS_HINT = ("needs PANNs CNN14 weights (Cnn14_mAP=0.431.pth, zenodo record 3987831): download them on a "
              "machine with network access and set [evaluate] panns_checkpoint")


CLAP_HINT = ("needs a CLAP model: set [evaluate] clap_checkpoint to a transformers CLAP directory (the pretrain "
             "stage writes one as {out_dir}/foundation/clap)")


VGGISH_HINT = ("needs VGGish weights (torchvggish vggish-10086976.pth): download them on a machine with network "
               "access and set [evaluate] vggish_checkpoint")


@attrs.define
class AudioNetwork:
    """A network the audio metrics run on; its outputs are cached per clip set."""

    name: str  # synth-classifier | panns-cnn14 | vggish (the metric configs' ``embedder``)
    model: Any
    classifies: bool
    _embeddings: dict[Any, np.ndarray] = attrs.field(factory=dict)
    _logits: dict[Any, np.ndarray] = attrs.field(factory=dict)

    def embed(self, key: Any, audios: Sequence[Audio]) -> np.ndarray:
        if key not in self._embeddings:
            self._embeddings[key] = self.model.embed(list(audios))
        return self._embeddings[key]

    def logits(self, key: Any, audios: Sequence[Audio]) -> np.ndarray:
        if key not in self._logits:
            self._logits[key] = self.model.logits(list(audios))
        return self._logits[key]


def load_audios(paths: Sequence[Path]) -> list[Audio]:
    return [load_audio(p) for p in paths]


#: What the reference classifier in a folder was trained on (reuse only when it matches).
FINGERPRINT_FILE = "trained_on.sha256"


def _training_fingerprint(samples: Sequence, settings: EvaluateSection) -> str:
    from c3llm.core.config import to_mapping

    digest = hashlib.sha256(json.dumps(to_mapping(settings.reference_classifier), sort_keys=True).encode())
    for sample in samples:
        digest.update(f"{Path(sample.audio_path).resolve()}\t{sample.label}\n".encode())
    return digest.hexdigest()


def setup_reference_classifier(settings: EvaluateSection, train: Sequence, splits: dict[str, list],
                               references: dict[str, list[Audio]], folder: Path) -> tuple[Any, dict[str, Any]]:
    """Train (or reuse) the reference classifier on ``train``'s labels (``[data] reference``,
    else the training data).

    :return: the classifier (``None`` when the training data carry no labels) and its record for
        results.json: accuracy on each evaluation split's reference audio (the first split's is
        ``accuracy``), and the training report (its own stratified held-out accuracy).
    """
    from c3llm.scoring.reference_classifier import (
        REPORT_FILE,
        WEIGHTS_FILE,
        ReferenceClassifier,
        train_reference_classifier,
    )

    labels = [s.label for s in train]
    if not train or any(label is None for label in labels) or len(set(labels)) < 2:
        reason = ("the reference classifier's data ([data] reference, else the training split) have no class "
                  "labels (sample.label)" if train else "no data ([data] reference or [data.train]) to train the "
                  "reference classifier on")
        return None, {"available": False, "reason": reason}
    fingerprint = _training_fingerprint(train, settings)
    stamp = folder / FINGERPRINT_FILE
    if (folder / WEIGHTS_FILE).is_file() and stamp.is_file() and stamp.read_text() == fingerprint:
        log.info("evaluate: reusing the reference classifier in %s", folder)
        classifier = ReferenceClassifier.from_directory(folder)
        report_file = folder / REPORT_FILE
        training = json.loads(report_file.read_text()) if report_file.is_file() else {}
    else:
        if (folder / WEIGHTS_FILE).is_file():
            log.info("evaluate: the reference classifier in %s was trained on other data or settings; retraining", folder)
        log.info("evaluate: training the reference classifier on %d labelled clips", len(train))
        classifier, training = train_reference_classifier(
            load_audios([s.audio_path for s in train]), labels, settings.reference_classifier, folder)
        stamp.write_text(fingerprint)
    training = {**training, "clips": len(train)}
    accuracy = {}
    for label, samples in splits.items():
        known = [i for i, s in enumerate(samples) if s.label is not None]
        if known:
            predicted = classifier.predict([references[label][i] for i in known])
            accuracy[label] = float(np.mean([predicted[k] == samples[i].label for k, i in enumerate(known)]))
    first = next(iter(splits))
    info = {"available": True, "path": str(folder), "labels": list(classifier.labels),
            "accuracy": accuracy.get(first), "accuracy_split": first, "accuracy_per_split": accuracy,
            "training": training}
    log.info("evaluate: reference classifier accuracy on %s reference audio: %s", first, accuracy.get(first))
    return classifier, info


def setup_networks(settings: EvaluateSection, classifier: Any) -> tuple[list[AudioNetwork], dict[str, str]]:
    """The audio networks available here, and the audio-network metrics that are not (with why)."""
    from c3llm.scoring.embedders import PannsCnn14, VGGish

    networks, unavailable = [], {}
    if classifier is not None:
        networks.append(AudioNetwork("synth-classifier", classifier, classifies=True))
    else:
        for name in ("fd_synth", "kl_synth", "mkl_synth", "isc_synth"):
            unavailable[name] = "needs the reference classifier, which needs class labels on the training split"
    if settings.panns_checkpoint:
        networks.append(AudioNetwork("panns-cnn14", PannsCnn14.from_checkpoint(settings.panns_checkpoint),
                                     classifies=True))
    else:
        unavailable.update({name: PANNS_HINT for name in ("fd", "kl", "mkl", "isc")})
    if settings.vggish_checkpoint:
        networks.append(AudioNetwork("vggish", VGGish.from_checkpoint(settings.vggish_checkpoint), classifies=False))
    else:
        unavailable["fad"] = VGGISH_HINT
    return networks, unavailable


@attrs.define
class ClapScoring:
    """The CLAP score of T2A outputs: mean cosine between each clip and the caption it was made from.

    ``metric`` says which CLAP: ``clap_score_inproject`` for one the pretrain stage made (its
    folder holds a ``pretrain.json`` of kind ``clap``), ``clap_score_external`` for any other
    CLAP directory. Neither is the paper's LAION CLAP score, and the report never sets them
    beside it.
    """

    metric: str
    scorer: Any  # c3llm.app.pretrain.clap_score.ClapScorer
    info: dict[str, Any]

    def score(self, audios: Sequence[Audio], prompts: Sequence[str]) -> dict[str, float]:
        """``{metric: mean, metric_std: std}`` over the clips (prompts: one per clip)."""
        from c3llm.core.errors import InputError

        if len(audios) != len(prompts) or not all(p.strip() for p in prompts):
            raise InputError("the CLAP score needs a non-empty caption for every clip")
        values = self.scorer.score(list(audios), list(prompts)).double()
        return {self.metric: float(values.mean()), f"{self.metric}_std": float(values.std(unbiased=False))}


def setup_clap_scoring(settings: EvaluateSection) -> tuple[ClapScoring | None, dict[str, Any]]:
    """The CLAP scorer ``[evaluate] clap_checkpoint`` names, and its record for results.json
    (``available``, ``metric``, ``path``, ``kind`` and, for an in-project CLAP, its pretraining
    report: held-out retrieval vs chance). Unset: ``(None, {"available": False, "reason": ...})``.

    :raises UnavailableError / CheckpointError: the key names a folder that holds no loadable CLAP.
    """
    from c3llm.app.pretrain.clap_score import ClapScorer

    if not settings.clap_checkpoint:
        return None, {"available": False, "reason": CLAP_HINT}
    folder = Path(settings.clap_checkpoint).expanduser()
    scorer = ClapScorer(folder)
    marker = folder / "pretrain.json"
    made = json.loads(marker.read_text()) if marker.is_file() else {}
    inproject = made.get("kind") == "clap"
    info: dict[str, Any] = {"available": True, "metric": "clap_score_inproject" if inproject else "clap_score_external",
                            "path": str(folder), "kind": "in-project (pretrain stage)" if inproject else "external"}
    if inproject:
        info["pretraining"] = made.get("report", {})
    log.info("evaluate: CLAP score from %s CLAP %s, as %s", info["kind"], folder, info["metric"])
    return ClapScoring(info["metric"], scorer, info), info
