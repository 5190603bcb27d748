import array

import pytest
from himtok_prompt_templates import (
    MASK_TOKEN_PATTERN,
    MT_END,
    MT_START,
    format_mask_tokens,
    mask_token,
    mask_vocabulary,
    placeholder_tokens,
)
from hypothesis import given
from hypothesis import strategies as st


def test_vocabulary_is_official_order():
    vocab = mask_vocabulary()
    assert len(vocab) == 1026
    assert vocab[:3] == ["<|mt_start|>", "<|mt_end|>", "<|mt_0|>"]
    assert vocab[-1] == "<|mt_1023|>"
    assert len(set(vocab)) == 1026
    assert mask_vocabulary(4) == [MT_START, MT_END, "<|mt_0|>", "<|mt_1|>", "<|mt_2|>", "<|mt_3|>"]


@given(st.integers(0, 1023))
def test_mask_token_matches_pattern(k):
    match = MASK_TOKEN_PATTERN.fullmatch(mask_token(k))
    assert match is not None and int(match.group(1)) == k


@given(st.lists(st.integers(0, 1023), min_size=1, max_size=40))
def test_format_mask_tokens_layout(tokens):
    text = format_mask_tokens(tokens)
    assert text.startswith(MT_START) and text.endswith(MT_END)
    assert [int(m.group(1)) for m in MASK_TOKEN_PATTERN.finditer(text)] == tokens


class IntLike:
    """Stands in for numpy / torch integer scalars: integer via __index__, not an int subclass."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


def test_format_mask_tokens_accepts_integer_likes():
    expected = "<|mt_start|><|mt_3|><|mt_1023|><|mt_end|>"
    assert format_mask_tokens(array.array("q", [3, 1023])) == expected
    assert format_mask_tokens([IntLike(3), IntLike(1023)]) == expected


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ([], "at least one"),
        ([1024], "outside"),
        ([-1], "outside"),
        ([1.5], "must be an int"),
        ([True], "bool"),
        ("12", "string"),
    ],
)
def test_format_mask_tokens_rejects_bad_input(tokens, message):
    with pytest.raises(ValueError, match=message):
        format_mask_tokens(tokens)


def test_mask_token_range_and_placeholder():
    with pytest.raises(ValueError, match="outside"):
        mask_token(1024)
    assert mask_token(5, codebook_size=8) == "<|mt_5|>"
    with pytest.raises(ValueError, match="codebook_size"):
        mask_vocabulary(0)
    assert placeholder_tokens() == (0,) * 32
    assert placeholder_tokens(3) == (0, 0, 0)
    with pytest.raises(ValueError, match="at least 1"):
        placeholder_tokens(0)
