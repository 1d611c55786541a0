"""Reading prepared features back: the trainer's view of the feature cache."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from c3llm.app.features.cache import FeatureCache, describe_extractor, key_of
from c3llm.app.features.prepare import KINDS, check_kinds, extractors, unique_samples
from c3llm.core.errors import CheckpointError, InputError
from c3llm.core.roles.dataset import Sample, SkippedItem

log = logging.getLogger(__name__)


class PreparedDataset(Sequence):
    """Samples with their cached tensors, read lazily (one entry file per kind per item).

    Items are dicts: ``id``, ``split``, ``captions``, ``label``, ``metadata`` and, for each
    kind present, ``codes`` ``(Q, S)`` long / ``audio`` ``(N, D)`` float32 /
    ``video`` ``(N, D)`` float32. :attr:`skipped` lists the samples left out and why.
    """

    def __init__(self, samples: Sequence[Sample], present: Sequence[tuple[str, ...]],
                 caches: Mapping[str, FeatureCache], skipped: list[SkippedItem]):
        self.samples = list(samples)
        self.present = list(present)
        self.caches = dict(caches)
        self.skipped = skipped

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        sample = self.samples[index]
        item: dict[str, Any] = {
            "id": sample.id, "split": sample.split, "captions": sample.captions,
            "label": sample.label, "metadata": sample.metadata,
        }
        for kind in self.present[index]:
            tensors = self.caches[kind].get(sample.id)
            item[kind] = tensors["codes"].long() if kind == "codes" else tensors["features"].float()
        return item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in range(len(self)):
            yield self[index]


def load_prepared(
    cache_root: str | Path,
    model: Any,
    samples: Iterable[Sample],
    kinds: Sequence[str] = KINDS,
    *,
    require: Sequence[str] = (),
) -> PreparedDataset:
    """The prepared features of ``samples`` for ``model`` (same extractors, same keys).

    :param kinds: kinds to load where present; a kind the model cannot make, or that was
        never prepared with this model's extractor, is left out (logged).
    :param require: kinds every returned sample must have (e.g. ``("codes", "video")`` for
        video-to-audio); samples missing one are skipped and listed in ``skipped``.
    :raises CheckpointError: a required kind was never prepared for this extractor.
    """
    kinds = check_kinds(kinds)
    require = check_kinds(require)
    wanted = list(dict.fromkeys([*kinds, *require]))
    found, missing = extractors(model, wanted)
    for kind in require:
        if kind in missing:
            raise InputError(f"load_prepared requires {kind!r} but {missing[kind]}")
    caches: dict[str, FeatureCache] = {}
    for kind, (component, recipe) in found.items():
        description = describe_extractor(kind, component, recipe=recipe)
        key = key_of(description)
        if not (Path(cache_root) / key).is_dir():
            message = (f"no {kind} features prepared under {Path(cache_root) / key} for this model's "
                       f"extractor (a changed config or retrained component has a new key); run prepare first")
            if kind in require:
                raise CheckpointError(message)
            log.warning("load_prepared: %s", message)
            continue
        caches[kind] = FeatureCache(cache_root, key)
    kept, present, skipped = [], [], []
    for sample in unique_samples(samples)[0]:
        have = tuple(kind for kind in caches if caches[kind].has(sample.id))
        lacking = [kind for kind in require if kind not in have]
        if lacking or not have:
            skipped.append(SkippedItem(sample.id, f"no cached {', '.join(lacking or kinds)} (failed or not prepared)"))
            continue
        kept.append(sample)
        present.append(have)
    if skipped:
        log.warning("load_prepared: %d sample(s) skipped for lack of cached features, e.g. %s: %s",
                    len(skipped), skipped[0].id, skipped[0].reason)
    log.info("load_prepared: %d sample(s) with %s", len(kept), ", ".join(caches) or "nothing")
    return PreparedDataset(kept, present, caches, skipped)
