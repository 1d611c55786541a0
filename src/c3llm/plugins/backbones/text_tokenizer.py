"""The text tokenizer of the tiny presets: a small lower-cased BPE trained with ``tokenizers``.

A real pretrained backbone brings its own ``tokenizer.json``; the random-init presets need one
too, small enough that its embedding rows cost nothing. It is trained in memory from a list of
captions (a built-in corpus of everyday sound descriptions by default), so building a preset
does no I/O; :func:`save_tokenizer` / :func:`load_tokenizer` keep it as ``tokenizer.json`` so a
component rebuilt from a saved config gets exactly the same ids.

Pre-tokenisation is SentencePiece-style (``Metaspace``: words keep a leading ``▁``) followed by
a punctuation split, so decoding restores spaces exactly: ``decode(encode(s)) == s.lower()``
for any text written with single spaces and characters the corpus (or the ASCII alphabet) has.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from c3llm.core.errors import CheckpointError, ConfigError, InputError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
#: Special tokens of the tiny tokenizer, in id order (``<pad>`` is 0).
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)

#: Characters every tiny tokenizer knows even when the corpus never shows them.
_ALPHABET = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))

#: A small corpus of everyday sound descriptions (AudioCaps / Clotho style, lower case).
DEFAULT_CORPUS: tuple[str, ...] = (
    "a high beep repeats three times",
    "a low beep repeats twice followed by silence",
    "a dog barks twice in the distance",
    "a dog barks loudly while a man speaks",
    "a cat meows and then purrs softly",
    "birds chirp in the background as wind blows",
    "a bird sings a short melody",
    "rain falls steadily on a metal roof",
    "heavy rain and thunder rumble in the distance",
    "a car engine starts and idles",
    "a car passes by quickly on a wet road",
    "a truck horn honks twice",
    "a train horn blows as the train passes",
    "a siren wails and fades away",
    "a woman speaks while music plays",
    "a man speaks and a crowd laughs",
    "people talk in a busy restaurant",
    "children shout and play in a park",
    "a baby cries and a woman talks",
    "footsteps walk on a wooden floor",
    "a door creaks open and slams shut",
    "someone knocks on a door three times",
    "water runs from a faucet into a sink",
    "water splashes and a stream flows",
    "ocean waves crash on the shore",
    "wind blows hard against a microphone",
    "a clock ticks steadily",
    "a bell rings once and then echoes",
    "church bells ring several times",
    "a phone rings and stops",
    "an alarm beeps repeatedly",
    "a fast whistle rises in pitch",
    "a slow tone falls in pitch",
    "a short click followed by a long hum",
    "an electric motor hums and whirs",
    "a drill whirs and stops",
    "a hammer strikes metal four times",
    "glass shatters on the ground",
    "paper crumples and rustles",
    "typing on a computer keyboard",
    "a guitar plays a few chords",
    "a piano plays a slow melody",
    "a drum beats a steady rhythm",
    "a helicopter flies overhead",
    "an airplane engine roars as it takes off",
    "a motorcycle revs its engine loudly",
    "a crowd cheers and applauds",
    "a man coughs and clears his throat",
    "a person snores loudly",
    "a frog croaks at night while insects buzz",
    "insects buzz near a pond",
    "a rooster crows in the morning",
    "sheep bleat and a cow moos",
    "a horse gallops and neighs",
    "fire crackles and pops",
    "a kettle whistles on a stove",
    "food sizzles in a frying pan",
    "a vacuum cleaner runs and then turns off",
    "a toilet flushes",
    "a spray can hisses briefly",
    "a soft hum with a quiet buzz",
    "a loud bang followed by silence",
    "two beeps then a longer tone",
    "a chirp repeats five times quickly",
    "silence with faint background noise",
)


def train_tokenizer(corpus: Sequence[str] = (), vocab_size: int = 512) -> "Tokenizer":
    """Train a lower-cased BPE tokenizer on ``corpus`` (the built-in corpus when empty).

    Ids 0..3 are ``<pad> <bos> <eos> <unk>``. The vocabulary holds at most ``vocab_size``
    tokens; a small corpus yields fewer (BPE stops when no pair is left to merge).
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    texts = [t for t in (corpus or DEFAULT_CORPUS)]
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ConfigError(
            f"tokenizer_corpus[{bad[0]}] is empty or not a string; give non-empty captions "
            "(or leave tokenizer_corpus empty for the built-in corpus)"
        )
    minimum = len(SPECIAL_TOKENS) + len(_ALPHABET) + 1
    if vocab_size < minimum:
        raise ConfigError(
            f"tokenizer_vocab_size must be at least {minimum} (special tokens + the base "
            f"alphabet + one merge), got {vocab_size}"
        )
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"), pre_tokenizers.Punctuation()]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=_ALPHABET + ["▁"],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def encode_plain(tokenizer: "Tokenizer", texts: Sequence[str], forbidden: Iterable[int] = ()) -> list[list[int]]:
    """Token ids of user ``texts`` read as plain text: special and added tokens written in the
    text (``<eos>``, ``<Audio>``, ``<a_3>``) are not matched, so user text cannot forge a
    control token; any id in ``forbidden`` or of a special added token that still comes out
    (a non-special added token spelt like one) is dropped.

    :raises InputError: a text that is not valid Unicode (a lone surrogate).
    """
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(f"text {i} is not valid Unicode at character {exc.start} (a lone surrogate?)") from exc
    unknown = tokenizer.token_to_id(UNK)  # an unknown character stays <unk>, as before
    banned = set(forbidden) | {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special and i != unknown}
    previous = tokenizer.encode_special_tokens
    tokenizer.encode_special_tokens = True  # "<Audio>" in a text is "<", "audio", ">"
    try:
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    finally:
        tokenizer.encode_special_tokens = previous
    return [[i for i in e.ids if i not in banned] for e in encodings]


def save_tokenizer(tokenizer: "Tokenizer", path: str | Path) -> Path:
    """Write ``tokenizer`` as a ``tokenizer.json`` file (the ``tokenizers`` format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


def load_tokenizer(path: str | Path) -> "Tokenizer":
    """Read a ``tokenizer.json`` file; a directory is searched for ``tokenizer.json``."""
    from tokenizers import Tokenizer

    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(
            f"tokenizer file not found: {path}. Point tokenizer_path at a tokenizer.json "
            "(the file export_assets writes, or the one in a Hugging Face model directory)."
        )
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise CheckpointError(f"cannot read tokenizer {path}: {exc}") from exc
