"""CIDEr-D (cross-checked against pycocoevalcap), tokenisation, SPICE/SPIDEr availability."""

from __future__ import annotations

import json
import os
import stat

import pytest

from c3llm.core.errors import UnavailableError
from c3llm.plugins.metrics.cider import CiderD, CiderDConfig
from c3llm.scoring.cider import cider_d
from c3llm.plugins.metrics.spice import Spice, SpiceConfig, Spider, SpiderConfig
from c3llm.scoring.caption_tokenizer import ptb_tokenize

CANDIDATES = ["a dog barks twice", "a high beep sounds three times", "rain falls on a roof", "a man speaks"]
REFERENCES = [
    ["a dog barks twice loudly", "the dog is barking", "dog barks"],
    ["three high beeps", "a high pitched beep three times"],
    ["rain is falling on a tin roof", "heavy rain"],
    ["a woman speaks", "someone talks while a car passes by"],
]
# pycocoevalcap 1.2 Cider().compute_score on these (whitespace-tokenised) captions.
PYCOCOEVALCAP_SCORES = [4.04127354, 2.0696493, 1.40547347, 0.625]
PYCOCOEVALCAP_MEAN = 2.035349078124885


def test_cider_d_matches_pycocoevalcap():
    mean, per_clip = cider_d([c.split() for c in CANDIDATES], [[r.split() for r in refs] for refs in REFERENCES])
    assert mean == pytest.approx(PYCOCOEVALCAP_MEAN, rel=1e-9)
    assert per_clip.tolist() == pytest.approx(PYCOCOEVALCAP_SCORES, rel=1e-7)


def test_cider_d_hand_checkable_case():
    # Two clips, disjoint vocabularies: every n-gram has df = 1, idf = ln 2 for all, so the
    # tf-idf cosine is the plain n-gram cosine; an exact copy of the single reference scores 10.
    mean, per_clip = cider_d([["a", "b", "c", "d"], ["x", "y"]], [[["a", "b", "c", "d"]], [["x", "z"]]])
    assert per_clip[0] == pytest.approx(10.0)
    # "x y" vs "x z": unigram cosine 1/2; no shared 2-gram; no 3/4-grams: mean over n = 0.5/4.
    assert per_clip[1] == pytest.approx(10 * 0.5 / 4)
    assert mean == pytest.approx((10.0 + 1.25) / 2)


def test_length_penalty_and_clipping():
    # repeating a matching word cannot raise the score (clipping), the length penalty lowers it
    base, _ = cider_d([["a", "dog"], ["b"]], [[["a", "dog", "barks"]], [["c"]]])
    repeated, _ = cider_d([["a", "dog", "dog", "dog"], ["b"]], [[["a", "dog", "barks"]], [["c"]]])
    assert repeated < base


def test_ptb_tokenizer_rules():
    assert ptb_tokenize("A dog doesn't bark; it's \"loud\" (very), costing $1,000 -- well-known... ok.") == [
        "a", "dog", "does", "n't", "bark", "it", "'s", "loud", "very", "costing", "$", "1,000", "well-known", "ok"]


def test_cider_metric_tokenises_and_accepts_single_reference_strings():
    metric = CiderD(CiderDConfig())
    out = metric.compute(["A dog barks twice."], [["A dog barks twice!"]])
    assert set(out) == {"cider_d"}
    # one clip: idf = log(1) - log(1) = 0 for every n-gram, so CIDEr-D is 0 (as coco-caption)
    assert out["cider_d"] == 0.0
    two = metric.compute(CANDIDATES[:2], REFERENCES[:2])
    assert two["cider_d"] > 0


def test_spice_unavailable_without_java_and_jar(tmp_path):
    with pytest.raises(UnavailableError, match="spice_jar is not set.*CoreNLP|spice_jar is not set"):
        Spice(SpiceConfig()).compute(CANDIDATES, REFERENCES)
    with pytest.raises(UnavailableError, match="stanford-corenlp-3.6.0.jar does not exist"):
        Spider(SpiderConfig(spice_jar=str(tmp_path / "spice-1.0.jar"))).compute(CANDIDATES, REFERENCES)


def test_spice_runs_the_jar_protocol(tmp_path):
    # A stand-in "java" that follows SPICE's command line: read -out, write per-image F-scores.
    (tmp_path / "lib").mkdir()
    jar = tmp_path / "spice-1.0.jar"
    jar.write_text("")
    for name in ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar"):
        (tmp_path / "lib" / name).write_text("")
    fake_java = tmp_path / "java"
    fake_java.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "data = json.load(open(args[3]))\n"
        "out = args[args.index('-out') + 1]\n"
        "json.dump([{'image_id': d['image_id'], 'scores': {'All': {'f': 0.1 * (d['image_id'] + 1)}}} for d in data],"
        " open(out, 'w'))\n"
    )
    fake_java.chmod(fake_java.stat().st_mode | stat.S_IEXEC)
    config = SpiderConfig(spice_jar=str(jar), java=str(fake_java))
    out = Spider(config).compute(CANDIDATES, REFERENCES)
    assert out["spice"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.4) / 4)
    assert out["spider"] == pytest.approx((out["cider_d"] + out["spice"]) / 2)
    assert json.dumps(out)  # plain floats
    assert os.access(fake_java, os.X_OK)
