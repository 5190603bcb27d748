"""`apps/infer` inputs: JSONL and flag requests, task -> question, file names and RLE (no model needed)."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
from himtok_apps.infer.prompts import build_question
from himtok_apps.infer.requests import (
    Request,
    parse_box,
    parse_points,
    requests_from_arguments,
    requests_from_jsonl,
)
from himtok_apps.infer.writers import mask_of, rle_of, safe_name
from himtok_prompt_templates import grid_to_box, parse_response
from hypothesis import given
from hypothesis import strategies as st


def write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_jsonl_requests_keep_order_and_record_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    path = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "p", "image": "a.jpg", "prompt": "Segment <ref>x</ref>."},
            "{not json",
            {"id": "t", "image": "a.jpg", "task": "res", "ref": "the dog"},
            {"id": "e", "image": "a.jpg", "prompt": "   "},
            {"id": "u", "image": "a.jpg", "task": "res", "ref": "x", "colour": "red"},
            {"id": "m", "image": "a.jpg", "task": "res"},
            {"id": "o", "image": "a.jpg", "task": "openvocab", "classes": "cat, dog"},
            {"id": 7, "image": "a.jpg", "task": "box2mask", "box": [1, 2, 30, 40], "point": [5, 6]},
            {"id": "b", "image": "a.jpg", "task": "box2mask", "box": [30, 2, 1, 40]},
            {"id": "n", "task": "res", "ref": "x"},
        ],
    )
    requests = requests_from_jsonl(path)
    ids = [r.id for r in requests]
    assert ids == ["p", "line-2", "t", "e", "u", "m", "o:cat", "o:dog", "7", "b", "n"]
    assert [r.index for r in requests] == list(range(len(requests)))
    errors = {r.id: r.error or "" for r in requests}
    assert errors["p"] == errors["t"] == errors["7"] == ""
    assert "not JSON" in errors["line-2"]
    assert errors["e"] == "empty prompt"
    assert "unknown fields ['colour']" in errors["u"]
    assert errors["m"] == "task res needs ref"
    assert "x1 < x2" in errors["b"]
    assert "no image" in errors["n"]
    assert requests[0].image == str(tmp_path / "a.jpg")  # relative to the JSONL file
    dog = requests[ids.index("o:dog")]
    assert (dog.task, dog.ref, dog.classes) == ("openvocab", "dog", None)
    assert requests[ids.index("7")].points == ((5.0, 6.0),)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "image": "x.jpg", "prompt": "q"}] * 2)
    with pytest.raises(ValueError, match="appears twice"):
        requests_from_jsonl(path)


def test_ids_from_arguments_are_stems_unless_they_repeat() -> None:
    plain = requests_from_arguments(["d/a.jpg", "d/b.png"], prompt="q")
    assert [r.id for r in plain] == ["a", "b"]
    clash = requests_from_arguments(["d/a.jpg", "e/a.jpg"], task="openvocab", classes=["cat", "dog"])
    assert [r.id for r in clash] == ["d/a.jpg:cat", "d/a.jpg:dog", "e/a.jpg:cat", "e/a.jpg:dog"]


def _request(**fields: object) -> Request:
    return Request(id="r", index=0, image="x.jpg", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"task": "res", "ref": "the dog"}, "Segment <ref>the dog</ref>."),
        (
            {"task": "rec", "ref": "the dog"},
            "First create the segmentation mask for <ref>the dog</ref>, then identify its bounding box.",
        ),
        (
            {"task": "gres", "ref": "a cat"},
            "Does the image contain <ref>a cat</ref>? If it does, segment it.",
        ),
        (
            {"task": "openvocab", "ref": "cat"},
            "Does the image contain <ref>cat</ref>? If it does, segment it.",
        ),
        (
            {"task": "reason", "ref": "What keeps the rain off?"},
            "What keeps the rain off?\nWhat is the object and mask in the image?",
        ),
        ({"prompt": "Segment <ref>x</ref>."}, "Segment <ref>x</ref>."),
    ],
)
def test_questions_use_the_canonical_phrasing(fields: dict, expected: str) -> None:
    assert build_question(_request(**fields), 640, 480) == expected


def test_box_and_point_questions_go_on_the_grid() -> None:
    question = build_question(_request(task="box2mask", box=(64.0, 48.0, 320.0, 240.0)), 640, 480)
    parsed = parse_response(question)
    assert len(parsed.boxes) == 1
    back = grid_to_box(parsed.boxes[0].grid, 640, 480)
    assert np.allclose(back, (64, 48, 320, 240), atol=0.5)
    question = build_question(_request(task="point2mask", points=((320.0, 240.0),)), 640, 480)
    assert question == "Segment the object at <point>[500, 500]</point>."
    both = build_question(
        _request(task="box2mask", box=(0.0, 0.0, 64.0, 48.0), points=((10.0, 10.0),)), 640, 480
    )
    assert "<box>" in both and "<point>" in both


def test_mask2text_puts_the_codes_and_options_in_the_question() -> None:
    request = _request(task="mask2text", mask="m.png", classes=("a cat", "a dog"))
    question = build_question(request, 64, 48, encode_mask=lambda path: [5] * 32)
    assert question.count("<|mt_5|>") == 32 and "<|mt_start|>" in question
    assert "A. a cat" in question and "B. a dog" in question


def test_markup_in_an_expression_is_refused() -> None:
    with pytest.raises(ValueError, match="reserved markup"):
        build_question(_request(task="res", ref="the <ref>dog"), 64, 48)


@given(st.lists(st.floats(0, 5000, allow_nan=False), min_size=4, max_size=4))
def test_parse_box_accepts_exactly_ordered_boxes(values: list[float]) -> None:
    x1, y1, x2, y2 = values
    text = ",".join(repr(v) for v in values)
    if x2 > x1 and y2 > y1:
        assert parse_box(text) == (x1, y1, x2, y2)
        assert parse_box(values) == (x1, y1, x2, y2)
    else:
        with pytest.raises(ValueError):
            parse_box(text)


def test_parse_points_takes_one_or_several() -> None:
    assert parse_points("3,4") == ((3.0, 4.0),)
    assert parse_points([[1, 2], "3,4"]) == ((1.0, 2.0), (3.0, 4.0))
    for bad in ("1", "a,b", [1, 2, 3], "-1,2", "nan,2"):
        with pytest.raises(ValueError):
            parse_points(bad)


@given(st.text(string.printable + "éü/\\:*?<>|", min_size=1, max_size=150))
def test_safe_names_are_plain_and_distinct(ident: str) -> None:
    name = safe_name(ident)
    assert name and len(name) <= 120 and "/" not in name and "\\" not in name and name not in (".", "..")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    # A name that differs from its id carries the id's hash, so two ids never share a folder.
    if name != ident:
        other = ident + "x"
        assert safe_name(other) != name


@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
)
def test_rle_round_trip(height: int, width: int, seed: int) -> None:
    mask = np.random.default_rng(seed).random((height, width)) > 0.6
    rle = rle_of(mask)
    assert rle["size"] == [height, width] and isinstance(rle["counts"], str)
    assert json.loads(json.dumps(rle)) == rle
    assert np.array_equal(mask_of(rle), mask)
