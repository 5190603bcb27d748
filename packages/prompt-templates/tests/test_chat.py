"""Chat formats: the internvl2_5 prompt text, the image placeholder, and bad input."""

from __future__ import annotations

import pytest
from himtok_prompt_templates import (
    INTERNVL2_5_SYSTEM_MESSAGE,
    chat_template_jinja,
    expand_image_placeholder,
    format_chat,
    get_chat_format,
    with_image_placeholder,
)
from hypothesis import given
from hypothesis import strategies as st


def test_internvl2_5_prompt_is_the_official_layout() -> None:
    text = format_chat("<image>\nSegment <ref>road</ref>.")
    assert text == (
        "<|im_start|>system\n" + INTERNVL2_5_SYSTEM_MESSAGE + "<|im_end|>\n"
        "<|im_start|>user\n<image>\nSegment <ref>road</ref>.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert format_chat("q", "a", system_message="S") == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n"
    )
    assert get_chat_format("internvl2_5").end_of_turn == "<|im_end|>"


def test_image_placeholder_rules() -> None:
    assert with_image_placeholder("Segment it.") == "<image>\nSegment it."
    assert with_image_placeholder("Look: <image> here") == "Look: <image> here"
    expanded = expand_image_placeholder("a <image> b <image>", 3)
    assert expanded == "a <img>" + "<IMG_CONTEXT>" * 3 + "</img> b <image>"
    with pytest.raises(ValueError, match="no <image>"):
        expand_image_placeholder("no image", 3)
    with pytest.raises(ValueError, match=">= 0"):
        expand_image_placeholder("<image>", -1)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="unknown chat format"):
        format_chat("q", chat_format="vicuna")
    with pytest.raises(ValueError, match="question must be a string"):
        format_chat(None)  # type: ignore[arg-type]


@given(
    question=st.text(max_size=40),
    answer=st.one_of(st.none(), st.text(max_size=20)),
    system=st.one_of(st.none(), st.text(max_size=20)),
)
def test_jinja_template_renders_like_format_chat(
    question: str, answer: str | None, system: str | None
) -> None:
    jinja2 = pytest.importorskip("jinja2")
    template = jinja2.Environment().from_string(chat_template_jinja())
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": question})
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    rendered = template.render(messages=messages, add_generation_prompt=answer is None)
    assert rendered == format_chat(question, answer, system_message=system)


def test_format_conversation_supervises_exactly_the_answers() -> None:
    from himtok_prompt_templates import format_chat, format_conversation

    turns = [
        {"from": "human", "value": "<image>\nSegment <ref>the dog</ref>."},
        {"from": "gpt", "value": "Sure."},
        {"from": "human", "value": "And the cat?"},
        {"from": "gpt", "value": "No cat."},
    ]
    text, ranges = format_conversation(turns, system_message="S")
    assert [text[a:b] for a, b in ranges] == ["Sure.<|im_end|>\n", "No cat.<|im_end|>\n"]
    assert text.startswith(format_chat(turns[0]["value"], "Sure.", system_message="S"))
    with pytest.raises(ValueError, match="alternate"):
        format_conversation([turns[1]])
    with pytest.raises(ValueError, match="at least one turn"):
        format_conversation([])
