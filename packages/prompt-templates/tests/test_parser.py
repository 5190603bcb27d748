import pytest
from himtok_prompt_templates import (
    ParsedResponse,
    build_conversation,
    format_mask_tokens,
    parse_response,
)
from hypothesis import given, settings
from hypothesis import strategies as st

FRAGMENTS = [
    "<|mt_start|>",
    "<|mt_end|>",
    "<|mt_",
    "|>",
    "<|",
    "<|mt_7|>",
    "<|mt_1023|>",
    "<|mt_1024|>",
    "<|mt_007|>",
    "<|mt_-3|>",
    "<|mt_" + "9" * 5000 + "|>",
    "<ref>",
    "</ref>",
    "<ref",
    "<box>",
    "</box>",
    "<point>",
    "</point>",
    "[",
    "]",
    "[[",
    "]]",
    ", ",
    "12",
    "-40",
    "3.75",
    "1e9",
    "9" * 400,
    "Yes",
    "no",
    "NO",
    ". ",
    "\n",
    "<",
    ">",
    "<image>",
    "\x00",
    "\ud7ff",
]

soup = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=60).map("".join)


def assert_consistent(parsed: ParsedResponse) -> None:
    assert isinstance(parsed, ParsedResponse)
    for mask in parsed.masks:
        assert mask.length == len(mask.tokens) + len(mask.invalid_ids)
        assert all(0 <= t < 1024 for t in mask.tokens)
        assert mask.truncated == (not mask.complete)
    for box in parsed.boxes:
        x1, y1, x2, y2 = box.grid
        assert 0 <= x1 <= x2 <= 999 and 0 <= y1 <= y2 <= 999
    for point in parsed.points:
        assert all(0 <= v <= 999 for v in point.grid)
    starts = [m.start for m in parsed.masks]
    assert starts == sorted(starts)


@given(st.text())
def test_never_raises_on_arbitrary_text(text):
    assert_consistent(parse_response(text))


@settings(max_examples=200)
@given(soup, st.sampled_from([None, 1, 32]))
def test_never_raises_on_special_token_soup(text, expected_length):
    assert_consistent(parse_response(text, expected_length=expected_length))


@given(st.lists(st.integers(0, 1023), min_size=1, max_size=32), st.data())
def test_every_truncation_of_a_generation_parses_to_a_prefix(tokens, data):
    response = build_conversation(
        "segment_then_box",
        {"expression": "cat", "tokens": tokens, "box": (1, 2, 3, 4), "width": 10, "height": 10},
        data.draw(st.integers(0, 99)),
    )[1]["value"]
    cut = data.draw(st.integers(0, len(response)))
    parsed = parse_response(response[:cut], expected_length=len(tokens))
    assert_consistent(parsed)
    assert len(parsed.masks) <= 1
    if parsed.masks:
        span = parsed.masks[0]
        assert list(span.tokens) == tokens[: len(span.tokens)]
        assert span.complete == ("<|mt_end|>" in response[:cut])
        assert span.ok == span.complete
        if not span.complete:
            assert any(p.kind == "unterminated_mask" for p in parsed.problems)
    if parsed.boxes:
        assert "</box>" in response[:cut]


def test_all_strings_from_the_adversarial_list_at_100kb():
    cases = {
        "mt_prefixes": "<|mt_" * 20000,
        "digits": "<|mt_" + "9" * 100_000,
        "newlines": "\n" * 100_000,
        "periods_and_spaces": ". " * 50_000,
        "open_tags": "<box>" * 20_000,
        "box_digits": "<box>[" + "9" * 100_000 + "]</box>",
        "stray_tokens": "<|mt_1|>" * 12_500,
        "yes_no": "Yes. No. " * 11_000,
    }
    results = {name: parse_response(text) for name, text in cases.items()}
    assert results["mt_prefixes"].clean and results["mt_prefixes"].text == cases["mt_prefixes"]
    assert results["digits"].masks == ()
    assert [p.kind for p in results["open_tags"].problems] == ["unterminated_box"] * 20_000
    assert [p.kind for p in results["box_digits"].problems] == ["malformed_box"]
    assert [p.kind for p in results["stray_tokens"].problems] == ["stray_mask_tokens"]
    assert "12500 mask tokens" in results["stray_tokens"].problems[0].message
    assert results["yes_no"].answers == (True, False) * 11_000
    for parsed in results.values():
        assert_consistent(parsed)


def test_valid_span_and_text():
    parsed = parse_response(
        "The mask appears at " + format_mask_tokens([5, 0, 1023]) + ".", expected_length=3
    )
    assert parsed.clean
    assert parsed.mask_tokens == (5, 0, 1023)
    assert parsed.masks[0].ok
    assert parsed.text == "The mask appears at ."


def test_whitespace_between_mask_tokens_is_allowed():
    parsed = parse_response("<|mt_start|> <|mt_1|>\n<|mt_2|> <|mt_end|>", expected_length=2)
    assert parsed.clean and parsed.mask_tokens == (1, 2)


def test_out_of_range_and_non_canonical_ids_are_flagged():
    parsed = parse_response("<|mt_start|><|mt_1|><|mt_1024|><|mt_01|><|mt_" + "7" * 50 + "|><|mt_end|>")
    span = parsed.masks[0]
    assert span.tokens == (1,)
    assert span.invalid_ids[:2] == ("1024", "01") and span.invalid_ids[2].endswith("...")
    assert span.out_of_range and span.complete and not span.ok
    assert {p.kind for p in parsed.problems} == {"invalid_mask_token", "wrong_length"}
    assert parse_response("<|mt_start|><|mt_7|><|mt_end|>", codebook_size=8).masks[0].tokens == (7,)
    assert parse_response("<|mt_start|><|mt_8|><|mt_end|>", codebook_size=8).masks[0].out_of_range


def test_wrong_length_follows_expected_length():
    text = format_mask_tokens([1] * 31)
    assert parse_response(text).masks[0].wrong_length
    assert not parse_response(text, expected_length=31).masks[0].wrong_length
    assert parse_response(text, expected_length=None).clean
    assert [p.kind for p in parse_response("<|mt_start|><|mt_end|>", expected_length=None).problems] == [
        "empty_mask"
    ]


def test_spans_cut_by_text_tags_or_a_new_start():
    parsed = parse_response(
        "<|mt_start|><|mt_1|>oops<|mt_2|><|mt_end|><|mt_start|><|mt_3|><ref>x</ref><|mt_start|><|mt_4|>",
        expected_length=None,
    )
    assert [m.tokens for m in parsed.masks] == [(1,), (3,), (4,)]
    assert [m.complete for m in parsed.masks] == [False, False, False]
    kinds = [p.kind for p in parsed.problems]
    assert kinds.count("unterminated_mask") == 3
    assert "stray_mask_tokens" in kinds and "stray_mask_end" in kinds
    assert [r.text for r in parsed.refs] == ["x"]


def test_several_targets_come_back_in_order():
    text = "".join(f"<ref>obj{i}</ref>: {format_mask_tokens([i] * 32)}. " for i in range(5))
    parsed = parse_response(text)
    assert parsed.clean
    assert [r.text for r in parsed.refs] == [f"obj{i}" for i in range(5)]
    assert [m.tokens for m in parsed.masks] == [(i,) * 32 for i in range(5)]


def test_box_fixes_are_flagged():
    parsed = parse_response(
        "<box>[500, 20, 100, 10]</box> <box>[[-5, 3.6, 1200, 40]]</box> <box>[1, 2, 3, 4]</box>"
    )
    first, second, third = parsed.boxes
    assert first.grid == (100, 10, 500, 20) and first.swapped and not first.clamped
    assert second.grid == (0, 4, 999, 40) and second.clamped and second.rounded and not second.swapped
    assert third.grid == (1, 2, 3, 4) and not third.fixed
    assert [p.kind for p in parsed.problems] == ["fixed_box", "fixed_box"]
    assert third.to_pixels(999, 999) == (1.0, 2.0, 3.0, 4.0)


def test_multi_box_tag_and_malformed_boxes():
    parsed = parse_response(
        "<box>[[1, 2, 3, 4], [5, 6, 7, 8]]</box><box>[1, 2, 3]</box><box>[1, a, 3, 4]</box><box>[1, 2"
    )
    assert [b.grid for b in parsed.boxes] == [(1, 2, 3, 4), (5, 6, 7, 8)]
    assert [p.kind for p in parsed.problems] == ["malformed_box", "malformed_box", "unterminated_box"]


def test_points():
    parsed = parse_response("<point>[10, 20]</point>, <point>[1000, -1]</point> <point>[1]</point>")
    assert [p.grid for p in parsed.points] == [(10, 20), (999, 0)]
    assert parsed.points[1].clamped
    assert [p.kind for p in parsed.problems] == ["fixed_point", "malformed_point"]


def test_nested_and_unbalanced_refs():
    parsed = parse_response("<ref>a <ref>b</ref></ref> c</box>")
    assert [(r.text, r.complete) for r in parsed.refs] == [("a ", False), ("b", True)]
    assert [p.kind for p in parsed.problems] == ["unterminated_ref", "stray_ref_end", "stray_box_end"]
    assert parsed.text == "a b c"


@pytest.mark.parametrize(
    ("text", "answers"),
    [
        ("Yes, it is there.", (True,)),
        ("  no.", (False,)),
        ("No, there is no dog. Is it? yes!", (False, True)),
        ("There is no cat, yes indeed.", ()),
        ("yesterday; Nobody; Noah.", ()),
        ('Answer: "Yes"', (True,)),
        ("<ref>No entry sign</ref> is here.", ()),
        ("<|mt_start|><|mt_1|><|mt_end|>\nNo", (False,)),
    ],
)
def test_yes_no_answers_open_a_sentence(text, answers):
    assert parse_response(text, expected_length=None).answers == answers


def test_non_text_input_is_reported_not_raised():
    for value in (None, 12, ["<|mt_start|>"], object()):
        parsed = parse_response(value)
        assert [p.kind for p in parsed.problems] == ["not_text"] and parsed.masks == ()
    assert parse_response(b"<|mt_start|><|mt_3|><|mt_end|>\xff", expected_length=1).mask_tokens == (3,)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="expected_length"):
        parse_response("", expected_length=0)
    with pytest.raises(ValueError, match="codebook_size"):
        parse_response("", codebook_size=0)
