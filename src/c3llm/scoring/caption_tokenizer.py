"""PTB-style caption tokenisation, as coco-caption does before CIDEr-D and SPICE.

coco-caption runs Stanford's ``PTBTokenizer -preserveLines -lowerCase`` (Java) and then drops
punctuation tokens. :func:`ptb_tokenize` is a pure-Python rendering of the rules that matter
for captions (lower-casing, splitting clitics such as ``n't`` and ``'s``, splitting punctuation
off words while keeping hyphenated words and numbers like ``1,000`` whole, removing the
punctuation). :class:`JavaPTBTokenizer` runs the real one when Java and the CoreNLP jar exist.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from c3llm.core.errors import UnavailableError

log = logging.getLogger(__name__)

#: Tokens coco-caption removes after PTB tokenisation (``pycocoevalcap.tokenizer``).
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-lrb-", "-rrb-", "-lcb-", "-rcb-", ".", "?", "!", ",", ":", "-", "--",
     "...", ";", '"', "(", ")", "[", "]", "{", "}"]
)

_CLITIC_NT = re.compile(r"(\w)n't\b")
_CLITIC = re.compile(r"(\w)'(s|re|ve|ll|d|m)\b")
_TOKEN = re.compile(
    r"n't|'(?:s|re|ve|ll|d|m)\b"  # clitics split off above
    r"|\d+(?:[.,]\d+)*"  # numbers: 3.5, 1,000
    r"|\w+(?:[-'&]\w+)*"  # words, hyphenated words
    r"|\.\.\.|--|\S"  # ellipsis, dash, any other single symbol
)


def ptb_tokenize(text: str) -> list[str]:
    """Lower-cased PTB-style tokens of ``text`` with punctuation removed."""
    text = text.replace("\n", " ").lower()
    text = _CLITIC_NT.sub(r"\1 n't", text)
    text = _CLITIC.sub(r"\1 '\2", text)
    return [t for t in _TOKEN.findall(text) if t not in PUNCTUATIONS]


class JavaPTBTokenizer:
    """Stanford ``edu.stanford.nlp.process.PTBTokenizer`` through Java, as coco-caption runs it.

    :param jar: path to a CoreNLP jar holding the tokenizer (coco-caption ships
        ``stanford-corenlp-3.4.1.jar``).
    :param java: the Java executable (name on ``PATH`` or a path).
    """

    def __init__(self, jar: str | Path, java: str = "java"):
        self.jar = Path(jar)
        self.java = java

    def check(self) -> None:
        """Raise :class:`UnavailableError` unless Java and the jar are present."""
        if shutil.which(self.java) is None:
            raise UnavailableError(f"Java executable {self.java!r} not found; install a JRE or use tokenizer='python'")
        if not self.jar.is_file():
            raise UnavailableError(
                f"Stanford CoreNLP jar not found at {self.jar}; point ptb_jar at stanford-corenlp-*.jar "
                "or use tokenizer='python'"
            )

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        self.check()
        lines = "\n".join(t.replace("\n", " ") for t in texts)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
            f.write(lines)
            path = f.name
        try:
            cmd = [self.java, "-cp", str(self.jar), "edu.stanford.nlp.process.PTBTokenizer",
                   "-preserveLines", "-lowerCase", path]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        except subprocess.CalledProcessError as exc:
            raise UnavailableError(f"PTBTokenizer failed ({exc.returncode}): {exc.stderr.strip()[:500]}") from exc
        finally:
            Path(path).unlink(missing_ok=True)
        rows = out.rstrip("\n").split("\n") if texts else []
        if len(rows) != len(texts):
            raise UnavailableError(f"PTBTokenizer returned {len(rows)} lines for {len(texts)} captions")
        return [[w for w in row.split() if w not in PUNCTUATIONS] for row in rows]


def make_tokenizer(kind: str, jar: str | None = None, java: str = "java"):
    """``texts -> token lists`` for ``kind`` ``"python"`` or ``"java-ptb"``."""
    if kind == "python":
        return lambda texts: [ptb_tokenize(t) for t in texts]
    if kind == "java-ptb":
        if jar is None:
            raise UnavailableError("tokenizer='java-ptb' needs ptb_jar (path to stanford-corenlp-*.jar)")
        return JavaPTBTokenizer(jar, java)
    raise ValueError(f"unknown tokenizer {kind!r}; use 'python' or 'java-ptb'")
