"""SPICE and SPIDEr, run through the official SPICE jar (Java + Stanford CoreNLP 3.6.0).

SPICE parses captions into scene graphs with CoreNLP; there is no faithful pure-Python
equivalent, so nothing is approximated under this name: without Java, ``spice-1.0.jar`` and
the CoreNLP 3.6.0 jars in its ``lib/`` folder, :meth:`compute` raises
:class:`~c3llm.core.errors.UnavailableError` saying what to supply. Captions are PTB-tokenised
first, as coco-caption does. SPIDEr = (CIDEr-D + SPICE) / 2.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import attrs
import numpy as np

from c3llm.core.config import field, in_range
from c3llm.core.errors import InputError, UnavailableError
from c3llm.core.hookspecs import hookimpl
from c3llm.core.roles.metric import Metric
from c3llm.scoring.caption_tokenizer import make_tokenizer
from c3llm.scoring.cider import corpus_cider_d

log = logging.getLogger(__name__)

CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
SUPPLY_HINT = (
    "SPICE needs Java 8+ and the SPICE 1.0 release (spice-1.0.jar with lib/stanford-corenlp-3.6.0.jar "
    "and lib/stanford-corenlp-3.6.0-models.jar; get_stanford_models.sh of coco-caption fetches them). "
    "Download them on a machine with network access and set spice_jar to the jar's local path."
)


@attrs.frozen(kw_only=True)
class SpiceConfig:
    spice_jar: str | None = field(None, path=True, help="local spice-1.0.jar (CoreNLP 3.6.0 jars in lib/ beside it)")
    java: str = field("java", help="Java executable")
    java_memory: str = field("8G", help="JVM heap (-Xmx)")
    cache_dir: str | None = field(None, path=True, help="SPICE parse cache directory (speeds up reruns)")
    timeout_s: float = field(3600.0, validator=in_range(1.0), help="give up after this many seconds")
    tokenizer: Literal["python", "java-ptb"] = field("python", help="caption tokenisation (see cider_d)")
    ptb_jar: str | None = field(None, path=True, help="stanford-corenlp jar for tokenizer='java-ptb'")


def missing_requirements(config: SpiceConfig) -> list[str]:
    """What is missing to run SPICE here (empty when it can run)."""
    missing = []
    if shutil.which(config.java) is None:
        missing.append(f"Java executable {config.java!r} not on PATH")
    if config.spice_jar is None:
        missing.append("spice_jar is not set")
    else:
        jar = Path(config.spice_jar)
        if not jar.is_file():
            missing.append(f"{jar} does not exist")
        for name in CORENLP_JARS:
            if not (jar.parent / "lib" / name).is_file():
                missing.append(f"{jar.parent / 'lib' / name} does not exist")
    return missing


def run_spice(candidates: Sequence[str], references: Sequence[Sequence[str]], config: SpiceConfig) -> np.ndarray:
    """Per-clip SPICE F-scores ``(N,)`` from the jar (captions already tokenised and joined)."""
    missing = missing_requirements(config)
    if missing:
        raise UnavailableError("SPICE cannot run here: " + "; ".join(missing) + ". " + SUPPLY_HINT)
    payload = [{"image_id": i, "test": c, "refs": list(r)} for i, (c, r) in enumerate(zip(candidates, references))]
    with tempfile.TemporaryDirectory(prefix="c3llm-spice-") as tmp:
        in_path, out_path = Path(tmp) / "input.json", Path(tmp) / "output.json"
        in_path.write_text(json.dumps(payload))
        cache = config.cache_dir or str(Path(tmp) / "cache")
        cmd = [config.java, "-jar", f"-Xmx{config.java_memory}", str(config.spice_jar), str(in_path),
               "-cache", cache, "-out", str(out_path), "-subset", "-silent"]
        try:
            subprocess.run(cmd, cwd=str(Path(config.spice_jar).parent), check=True, capture_output=True,
                           text=True, timeout=config.timeout_s)
        except subprocess.CalledProcessError as exc:
            raise UnavailableError(f"SPICE failed (exit {exc.returncode}): {exc.stderr.strip()[-800:]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise UnavailableError(f"SPICE did not finish within {config.timeout_s} s; raise timeout_s") from exc
        if not out_path.is_file():
            raise UnavailableError(f"SPICE wrote no output file ({out_path})")
        results = json.loads(out_path.read_text())
    by_id = {int(item["image_id"]): float(item["scores"]["All"]["f"]) for item in results}
    if sorted(by_id) != list(range(len(candidates))):
        raise UnavailableError(f"SPICE returned scores for {len(by_id)} of {len(candidates)} captions")
    return np.array([by_id[i] for i in range(len(candidates))])


class Spice(Metric):
    """``spice``: mean SPICE F-score of generated captions (needs Java and the SPICE jar)."""

    task: ClassVar[str] = "caption"
    higher_is_better: ClassVar[dict[str, bool]] = {"spice": True}

    def __init__(self, config: SpiceConfig):
        self.config = config

    @property
    def available(self) -> bool:
        return not missing_requirements(self.config)

    def _tokenized(self, predictions: Sequence[str], references: Sequence[Sequence[str]]):
        if len(predictions) != len(references) or not predictions:
            raise InputError(f"spice: {len(predictions)} predictions but {len(references)} reference sets")
        tokenize = make_tokenizer(self.config.tokenizer, self.config.ptb_jar, self.config.java)
        cands = [" ".join(t) for t in tokenize(list(predictions))]
        refs = [[" ".join(t) for t in tokenize([r] if isinstance(r, str) else list(r))] for r in references]
        return cands, refs

    def compute(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
        missing = missing_requirements(self.config)  # fail before any work
        if missing:
            raise UnavailableError("SPICE cannot run here: " + "; ".join(missing) + ". " + SUPPLY_HINT)
        cands, refs = self._tokenized(predictions, references)
        return {"spice": float(run_spice(cands, refs, self.config).mean())}


@attrs.frozen(kw_only=True)
class SpiderConfig(SpiceConfig):
    cider_sigma: float = field(6.0, validator=in_range(0.0, low_open=True), help="CIDEr-D length-penalty sigma")


class Spider(Spice):
    """``spider`` = (CIDEr-D + SPICE) / 2, with both parts reported."""

    higher_is_better: ClassVar[dict[str, bool]] = {"spider": True, "spice": True, "cider_d": True}

    def compute(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
        spice = super().compute(predictions, references)["spice"]
        c = self.config
        cider_d = corpus_cider_d(predictions, references, make_tokenizer(c.tokenizer, c.ptb_jar, c.java),
                                 sigma=c.cider_sigma)
        return {"spider": (cider_d + spice) / 2, "cider_d": cider_d, "spice": spice}


@hookimpl
def register_metrics(register):
    register("spice", Spice, SpiceConfig, description="SPICE via the official jar (needs Java + CoreNLP 3.6.0)")
    register("spider", Spider, SpiderConfig, description="SPIDEr = (CIDEr-D + SPICE) / 2 (needs SPICE)")
