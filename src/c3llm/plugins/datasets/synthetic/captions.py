"""Captions of synthetic clips: several differently worded sentences per clip.

Every caption names all of a clip's attributes — source, pitch, number of events, loudness
and, for chirps, the sweep direction — with words from :data:`VOCABULARY`, a table that maps
each attribute value to every surface form the generator may use. Evaluation maps a caption
(reference or generated) back to attributes with :func:`attributes_from_caption`, which reads
the same table, so generation and evaluation cannot drift apart.

Wording varies along two axes: a template (sentence structure, see :data:`TEMPLATES`) and, in
each slot, a synonym drawn at random ("beep" / "tone" / "bleep", "twice" / "two" / "a pair
of" …). A clip's captions use distinct templates, so they are distinct sentences.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

# ---------------------------------------------------------------------------------------
# Generation tables

#: source -> nouns for one event (singular; the plural adds -s/-es).
SOURCE_NOUNS: dict[str, tuple[str, ...]] = {
    "beep": ("beep", "tone", "bleep"),
    "chirp": ("chirp", "sweep", "whistle"),
    "knock": ("knock", "tap", "thud"),
    "bell": ("bell", "chime", "ding"),
    "drone": ("engine hum", "motor drone", "buzz"),
    "hiss": ("hiss", "noise burst", "whoosh"),
}

#: source -> verbs (third person singular) for "a <noun> <verb> twice".
SOURCE_VERBS: dict[str, tuple[str, ...]] = {
    "beep": ("sounds", "beeps", "goes off"),
    "chirp": ("sounds", "chirps", "plays"),
    "knock": ("sounds", "knocks", "is heard"),
    "bell": ("rings", "sounds", "strikes"),
    "drone": ("runs", "starts up", "drones"),
    "hiss": ("hisses", "sounds", "blows"),
}

#: pitch class -> adjectives ("a high beep"); the first is also the noun form in "at a high pitch".
PITCH_WORDS: dict[str, tuple[str, ...]] = {
    "low": ("low", "low-pitched", "deep"),
    "mid": ("medium", "mid-pitched", "medium-pitched"),
    "high": ("high", "high-pitched", "shrill"),
}

#: number of events -> adverbs ("rings twice").
COUNT_ADVERBS: dict[int, tuple[str, ...]] = {
    1: ("once", "a single time", "just once"),
    2: ("twice", "two times"),
    3: ("three times", "thrice"),
    4: ("four times",),
}

#: number of events -> determiners for a noun phrase ("three beeps", "a single beep").
COUNT_NUMBERS: dict[int, tuple[str, ...]] = {
    1: ("a single", "one"),
    2: ("two", "a pair of"),
    3: ("three",),
    4: ("four",),
}

#: loudness class -> adjectives and adverbs.
LOUDNESS_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "quiet": ("quiet", "soft", "faint"),
    "loud": ("loud", "strong", "powerful"),
}
LOUDNESS_ADVERBS: dict[str, tuple[str, ...]] = {
    "quiet": ("quietly", "softly", "faintly"),
    "loud": ("loudly", "strongly", "powerfully"),
}

#: chirp direction -> adjectives placed before the noun ("a rising chirp").
DIRECTION_WORDS: dict[str, tuple[str, ...]] = {
    "up": ("rising", "upward", "ascending"),
    "down": ("falling", "downward", "descending"),
}


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "sh", "ch", "x", "z")) else "s")


#: Caption templates. Slots: ``{a}`` marks an article fixed up to "a"/"an"; ``{noun}`` /
#: ``{nouns}`` (source noun, with the chirp's direction word in front; ``{nouns}`` agrees with
#: the count), ``{verb}``, ``{pitch}``, ``{pitch_base}`` (low/medium/high), ``{count_adv}``,
#: ``{count_num}``, ``{loud_adj}``, ``{loud_adv}``.
TEMPLATES: tuple[str, ...] = (
    "{a} {loud_adj} {pitch} {noun} {verb} {count_adv}",
    "{count_num} {loud_adj} {pitch} {nouns}",
    "{a} {pitch} {noun} {verb} {count_adv}, {loud_adv}",
    "{count_adv}, {a} {pitch} {noun} {verb} {loud_adv}",
    "{count_num} {loud_adj} {nouns} at a {pitch_base} pitch",
    "you can hear {a} {pitch} {noun} {count_adv}, {loud_adj}",
    "{a} {noun} with a {pitch_base} pitch {verb} {loud_adv} {count_adv}",
    "the sound of {count_num} {loud_adj} {pitch} {nouns}",
    "{a} {noun} {verb} {count_adv}, {loud_adj} and {pitch}",
    "{a} {noun} is heard {count_adv}; it is {loud_adj} and {pitch}",
    "{loud_adv}, {a} {pitch} {noun} {verb} {count_adv}",
    "{a} {pitch} {noun}, {loud_adj}, heard {count_adv}",
)


# ---------------------------------------------------------------------------------------
# The vocabulary table (generation and evaluation share it)


def _vocabulary() -> dict[str, dict[object, tuple[str, ...]]]:
    sources = {
        s: tuple(dict.fromkeys([*nouns, *map(_plural, nouns), *(v for v in SOURCE_VERBS[s] if v in _SPECIFIC_VERBS)]))
        for s, nouns in SOURCE_NOUNS.items()
    }
    return {
        "source": sources,
        "pitch": {p: words + (f"{words[0]} pitch",) for p, words in PITCH_WORDS.items()},
        "count": {n: COUNT_ADVERBS[n] + COUNT_NUMBERS[n] for n in COUNT_ADVERBS},
        "loudness": {k: LOUDNESS_ADJECTIVES[k] + LOUDNESS_ADVERBS[k] for k in LOUDNESS_ADJECTIVES},
        "direction": dict(DIRECTION_WORDS),
    }


#: Verbs that name their source (the generic "sounds" / "is heard" do not).
_SPECIFIC_VERBS = frozenset({"beeps", "chirps", "knocks", "rings", "drones", "hisses"})

#: category -> attribute value -> every word or phrase that expresses it in a caption.
#: Categories: ``source`` (class name), ``pitch`` (low/mid/high), ``count`` (1-4 events),
#: ``loudness`` (quiet/loud), ``direction`` (up/down, chirps only). No phrase appears under
#: two values, so a caption maps back to attributes unambiguously.
VOCABULARY: dict[str, dict[object, tuple[str, ...]]] = _vocabulary()


def _matchers() -> list[tuple[re.Pattern, str, object]]:
    """``(regex, category, value)`` for every phrase, longest phrases first."""
    entries = [
        (phrase, category, value)
        for category, table in VOCABULARY.items()
        for value, phrases in table.items()
        for phrase in phrases
    ]
    entries.sort(key=lambda e: -len(e[0]))
    return [(re.compile(rf"(?<![\w-]){re.escape(p)}(?![\w-])"), c, v) for p, c, v in entries]


_MATCHERS = _matchers()


def attributes_from_caption(caption: str) -> dict[str, object]:
    """Map a caption back to attributes with :data:`VOCABULARY`.

    Longer phrases win over the words inside them ("three times" over "three", "high-pitched"
    over "high"); a category whose words are absent is left out of the result.

    >>> attributes_from_caption("Three loud high-pitched beeps")
    {'count': 3, 'loudness': 'loud', 'pitch': 'high', 'source': 'beep'}
    """
    text = caption.lower()
    found: dict[str, tuple[int, object]] = {}
    taken = np.zeros(len(text) + 1, dtype=bool)
    for pattern, category, value in _MATCHERS:
        for m in pattern.finditer(text):
            if taken[m.start():m.end()].any():
                continue  # part of a longer phrase already matched
            taken[m.start():m.end()] = True
            if category not in found or m.start() < found[category][0]:
                found[category] = (m.start(), value)
    return {category: found[category][1] for category in sorted(found)}


# ---------------------------------------------------------------------------------------
# Generation


def _with_articles(text: str) -> str:
    """Replace each ``{a}`` marker by "a" or "an" according to the next word."""
    return re.sub(r"\{a\} (\w)", lambda m: ("an " if m.group(1) in "aeiou" else "a ") + m.group(1), text)


def make_captions(
    *,
    source: str,
    pitch: str,
    count: int,
    loudness: str,
    direction: str | None,
    num_captions: int,
    rng: np.random.Generator,
) -> list[str]:
    """``num_captions`` distinct captions of one clip, each from a different template.

    :raises ValueError: more captions asked than there are templates.
    """
    if not 1 <= num_captions <= len(TEMPLATES):
        raise ValueError(f"num_captions must be 1..{len(TEMPLATES)}, got {num_captions}")

    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    captions = []
    for index in rng.permutation(len(TEMPLATES))[:num_captions]:
        noun = pick(SOURCE_NOUNS[source])
        if direction is not None:
            noun = f"{pick(DIRECTION_WORDS[direction])} {noun}"
        # a verb must not repeat the noun ("a beep beeps")
        verbs = [v for v in SOURCE_VERBS[source] if v.split()[0][:4] != noun.split()[-1][:4]]
        slots: Mapping[str, str] = {
            "a": "{a}",
            "noun": noun,
            "nouns": noun if count == 1 else _plural(noun),
            "verb": pick(verbs),
            "pitch": pick(PITCH_WORDS[pitch]),
            "pitch_base": PITCH_WORDS[pitch][0],
            "count_adv": pick(COUNT_ADVERBS[count]),
            "count_num": pick(COUNT_NUMBERS[count]),
            "loud_adj": pick(LOUDNESS_ADJECTIVES[loudness]),
            "loud_adv": pick(LOUDNESS_ADVERBS[loudness]),
        }
        text = _with_articles(TEMPLATES[index].format(**slots))
        captions.append(text[0].upper() + text[1:])
    return captions
