"""Captions of foundation clips: what is heard, in everyday words, with paraphrase variety.

Each caption names the one to three most prominent event kinds of a clip (loudest first), each
with its count (one .. four, or "many"), pitch (high / low; bands from the event's main
frequency), loudness (loud / quiet) and, for glides, rising / falling. Word choice, phrase order
and sentence frame vary by caption; caption ``j`` of clip ``i`` depends only on
``(seed, i, j)``. The kind nouns are everyday sound words (beep, knock, hum, hiss, ...) so a
language model pretrained on them has met the words task captions use, never the task
world's own (source, pitch) pairings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from c3llm.app.foundation.annotated import AnnotatedClip, Event

#: kind -> (singular, plural) nouns
NOUNS: dict[str, tuple[tuple[str, str], ...]] = {
    "harmonic": (("tone", "tones"), ("beep", "beeps"), ("note", "notes"), ("chime", "chimes")),
    "sweep": (("sweep", "sweeps"), ("glide", "glides"), ("whistle", "whistles"), ("siren-like tone", "siren-like tones")),
    "noise": (("hiss", "hisses"), ("burst of noise", "bursts of noise"), ("whoosh", "whooshes"), ("rush of air", "rushes of air")),
    "impact": (("knock", "knocks"), ("tap", "taps"), ("thud", "thuds"), ("hit", "hits"), ("clang", "clangs")),
    "drone": (("hum", "hums"), ("drone", "drones"), ("buzz", "buzzes"), ("motor hum", "motor hums")),
    "fm": (("metallic ring", "metallic rings"), ("warbling tone", "warbling tones"), ("bell-like tone", "bell-like tones")),
    "pulses": (("train of clicks", "trains of clicks"), ("ticking", "ticking sounds"), ("rattle", "rattles"), ("crackle", "crackles")),
    "formant": (("voice-like hum", "voice-like hums"), ("vowel sound", "vowel sounds"), ("synthetic voice", "synthetic voices")),
}
PITCH_WORDS = {"high": ("high", "high-pitched", "shrill"), "low": ("low", "low-pitched", "deep"),
               "mid": ("mid-pitched", "medium-pitched", "")}
LOUD_WORDS = {"loud": ("loud", "strong", "powerful"), "quiet": ("quiet", "soft", "faint"), "moderate": ("",)}
DIRECTION_WORDS = {1: ("rising", "upward", "ascending"), -1: ("falling", "downward", "descending")}
COUNT_WORDS = {1: ("a single", "one", "a"), 2: ("two", "a pair of"), 3: ("three",), 4: ("four",),
               0: ("many", "several", "repeated")}
COUNT_ADVERBS = {1: ("once", "just once"), 2: ("twice", "two times"), 3: ("three times", "thrice"),
                 4: ("four times",), 0: ("repeatedly", "over and over", "many times")}
VERBS = ("sounds", "is heard", "plays", "occurs")
FRAMES = ("{}", "you can hear {}", "the sound of {}", "{} is heard", "a recording of {}")
#: pitch bands (Hz): below LOW is low, above HIGH is high
LOW_HZ, HIGH_HZ = 300.0, 1500.0
#: a kind quieter than the loudest by more than this (dB) is not mentioned
MENTION_DB = 20.0


def pitch_class(hz: float | None) -> str | None:
    if hz is None:
        return None
    return "low" if hz < LOW_HZ else "high" if hz > HIGH_HZ else "mid"


def loudness_class(level_db: float) -> str:
    return "loud" if level_db > -12 else "quiet" if level_db < -28 else "moderate"


def kind_summary(events: Sequence[Event]) -> dict:
    """Attributes of one kind's events: count (0 = five or more), pitch / loudness classes, direction."""
    pitches = [e.pitch_hz for e in events if e.pitch_hz is not None]
    pitch = math.exp(float(np.median(np.log(pitches)))) if pitches else None
    directions = [e.direction for e in events if e.direction]
    direction = int(np.sign(sum(directions))) if directions and abs(sum(directions)) == len(directions) else 0
    level = max(e.level_db for e in events)
    return {"count": len(events) if len(events) <= 4 else 0, "pitch": pitch_class(pitch),
            "loudness": loudness_class(level), "direction": direction, "level_db": level,
            "first_onset": min(e.onset for e in events)}


def clip_summary(clip: AnnotatedClip, max_kinds: int = 3) -> list[tuple[str, dict]]:
    """The kinds a caption mentions, loudest first, with :func:`kind_summary` of each."""
    by_kind: dict[str, list[Event]] = {}
    for event in clip.audible_events():
        by_kind.setdefault(event.kind, []).append(event)
    ranked = sorted(((k, kind_summary(v)) for k, v in by_kind.items()), key=lambda kv: -kv[1]["level_db"])
    if not ranked:
        return []
    top = ranked[0][1]["level_db"]
    return [kv for kv in ranked if kv[1]["level_db"] >= top - MENTION_DB][:max_kinds]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _phrase(rng: np.random.Generator, kind: str, info: dict, clause: bool) -> str:
    """A noun phrase ("two loud high-pitched beeps") or, when ``clause``, sometimes a clause
    ("a deep hum sounds twice")."""
    singular, plural = _pick(rng, NOUNS[kind])
    adjectives = [_pick(rng, LOUD_WORDS[info["loudness"]])]
    if info["direction"]:
        adjectives.append(_pick(rng, DIRECTION_WORDS[info["direction"]]))
    if info["pitch"]:
        adjectives.append(_pick(rng, PITCH_WORDS[info["pitch"]]))
    if rng.random() < 0.5:
        adjectives = adjectives[::-1]
    words = " ".join(a for a in adjectives if a)
    count = info["count"]
    if clause and count != 1 and rng.random() < 0.4:  # clause: "a high tone sounds twice"
        head = ("an" if words[:1] in "aeiou" and words else "a") if words else ("an" if singular[0] in "aeiou" else "a")
        return f"{head} {words + ' ' if words else ''}{singular} {_pick(rng, VERBS)} {_pick(rng, COUNT_ADVERBS[count])}"
    determiner = _pick(rng, COUNT_WORDS[count])
    noun = singular if count == 1 else plural
    text = f"{determiner} {words + ' ' if words else ''}{noun}"
    if determiner == "a" and text[2:3] in "aeiou":
        text = "an" + text[1:]
    return text


def captions_for(clip: AnnotatedClip, seed: int, index: int, count: int = 4) -> list[str]:
    """``count`` paraphrased captions of ``clip`` (clip ``index`` of corpus ``seed``)."""
    kinds = clip_summary(clip)
    out = []
    for j in range(count):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCA9, index, j]))
        if not kinds:
            out.append(_pick(rng, ("near silence", "faint background noise", "silence with a quiet hiss")))
            continue
        mentioned = kinds[:1 + int(rng.integers(len(kinds)))] if rng.random() < 0.3 else kinds
        frame = _pick(rng, FRAMES)
        phrases = [_phrase(rng, kind, info, frame == "{}") for kind, info in mentioned]
        if len(phrases) == 1:
            body = phrases[0]
        elif len(phrases) == 2 and mentioned[1][1]["first_onset"] > mentioned[0][1]["first_onset"] + 0.5 \
                and rng.random() < 0.5:
            body = f"{phrases[0]}, then {phrases[1]}"
        elif mentioned[-1][1]["level_db"] < mentioned[0][1]["level_db"] - 10 and rng.random() < 0.5:
            body = f"{' and '.join(phrases[:-1])} with {phrases[-1]} in the background"
        else:
            body = ", ".join(phrases[:-1]) + f" and {phrases[-1]}"
        out.append(" ".join(frame.format(body).split()))
    return out
