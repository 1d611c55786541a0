"""The tiny preset tokenizer: trained, lower-cased, round-trips captions, saved as tokenizer.json."""

import pytest

from c3llm.core.errors import CheckpointError, ConfigError
from c3llm.plugins.backbones.text_tokenizer import (
    SPECIAL_TOKENS,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)


def test_round_trips_captions():
    tok = train_tokenizer()
    for text in ["a high beep repeats three times", "a dog barks, then a zebra yells!", "two beeps (quietly)"]:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids) == text
    # Lower-cased, and known captions become whole-word tokens.
    assert tok.encode("A HIGH Beep").tokens == ["▁a", "▁high", "▁beep"]


def test_special_tokens_come_first():
    tok = train_tokenizer(["a beep", "a hum"], vocab_size=128)
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert tok.get_vocab_size() <= 128


def test_save_and_load_give_the_same_ids(tmp_path):
    tok = train_tokenizer(["a clock ticks", "a bell rings"], vocab_size=128)
    path = save_tokenizer(tok, tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path)  # a directory is searched for tokenizer.json
    text = "a bell ticks"
    assert again.encode(text).ids == tok.encode(text).ids
    assert path.name == "tokenizer.json"


def test_bad_inputs_are_named():
    with pytest.raises(ConfigError, match=r"tokenizer_corpus\[1\]"):
        train_tokenizer(["a beep", "  "])
    with pytest.raises(ConfigError, match="tokenizer_vocab_size must be at least"):
        train_tokenizer(["a beep"], vocab_size=10)
    with pytest.raises(CheckpointError, match="tokenizer file not found"):
        load_tokenizer("/nonexistent/tokenizer.json")
