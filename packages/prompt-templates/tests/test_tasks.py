import json

import pytest
from himtok_prompt_templates import (
    TASK_ALIASES,
    TASKS,
    Sample,
    Target,
    box_to_grid,
    build_conversation,
    get_task,
    parse_response,
    placeholder_tokens,
    point_to_grid,
)
from hypothesis import given, settings
from hypothesis import strategies as st

RESERVED = ("<|mt_", "<ref>", "</ref>", "<box>", "</box>", "<point>", "</point>", "<image>")

phrases = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=24).filter(
    lambda s: s.strip() != "" and not any(r in s for r in RESERVED)
)
one_line_phrases = phrases.filter(lambda s: "\n" not in s)
token_lists = st.lists(st.integers(0, 1023), min_size=1, max_size=32)


@st.composite
def image_box_points(draw):
    width = draw(st.integers(1, 4000))
    height = draw(st.integers(1, 4000))
    xs = sorted(draw(st.floats(0, width)) for _ in range(2))
    ys = sorted(draw(st.floats(0, height)) for _ in range(2))
    points = draw(st.lists(st.tuples(st.floats(0, width), st.floats(0, height)), min_size=1, max_size=3))
    return width, height, (xs[0], ys[0], xs[1], ys[1]), points


@st.composite
def case(draw, task):
    """(sample, what the human turn must parse to, what the gpt turn must parse to)."""
    expression = draw(phrases)
    tokens = draw(token_lists)
    width, height, box, points = draw(image_box_points())
    grid_box = box_to_grid(box, width, height)
    grid_points = [point_to_grid(p, width, height) for p in points]
    human: dict[str, object] = {"masks": [], "boxes": [], "points": [], "refs": []}
    gpt: dict[str, object] = {"masks": [], "boxes": [], "points": [], "refs": [], "answers": ()}
    sample = Sample(expression=expression, tokens=tokens, box=box, points=points, width=width, height=height)
    if task in ("segment", "segment_then_box", "box", "segment_n_tokens", "exists"):
        human["refs"] = [expression]
    if task in (
        "segment",
        "segment_then_box",
        "box_to_mask",
        "box_points_to_mask",
        "points_to_mask",
        "reasoning",
    ):
        gpt["masks"] = [tokens]
    if task in ("segment_then_box", "box"):
        gpt["boxes"] = [grid_box]
    if task in ("box_to_mask", "box_points_to_mask"):
        human["boxes"] = [grid_box]
    if task in ("box_points_to_mask", "points_to_mask"):
        human["points"] = grid_points
    if task == "segment_n_tokens":
        full = draw(st.lists(st.integers(0, 1023), min_size=32, max_size=32))
        n = draw(st.integers(1, 32))
        sample = Sample(expression=expression, tokens=full, n_tokens=n)
        gpt["masks"] = [full[:n]]
    if task == "exists":
        present = draw(st.booleans())
        sample = Sample(expression=expression, tokens=tokens, answer=present)
        gpt["answers"] = (present,)
        gpt["masks"] = [tokens] if present else []
        gpt["refs"] = [] if present else [expression]
    if task == "reasoning":
        answer = draw(phrases)
        sample = Sample(question=draw(phrases), answer=answer, tokens=tokens)
        gpt["refs"] = [answer]
    if task == "mask_perception":
        options = draw(st.lists(one_line_phrases, min_size=1, max_size=6))
        chosen = draw(st.integers(0, len(options) - 1))
        answer = chosen if draw(st.booleans()) else options[chosen]
        sample = Sample(tokens=tokens, options=options, answer=answer)
        human["masks"] = [tokens]
        gpt["refs"] = [options[chosen if isinstance(answer, int) else options.index(answer)]]
    if task == "multi_target":
        targets = draw(st.lists(st.tuples(phrases, token_lists), min_size=1, max_size=4))
        sample = Sample(targets=[Target(e, t) for e, t in targets])
        human["refs"] = gpt["refs"] = [e for e, _ in targets]
        gpt["masks"] = [t for _, t in targets]
    return sample, human, gpt


def check(parsed, expected):
    assert parsed.problems == ()
    assert [list(m.tokens) for m in parsed.masks] == [list(t) for t in expected["masks"]]
    assert all(m.ok for m in parsed.masks)
    assert [b.grid for b in parsed.boxes] == list(expected["boxes"])
    assert [p.grid for p in parsed.points] == list(expected["points"])
    assert [r.text for r in parsed.refs] == list(expected["refs"])
    if "answers" in expected:
        assert parsed.answers == expected["answers"]


@pytest.mark.parametrize("task", sorted(TASKS))
@settings(max_examples=30)
@given(data=st.data(), seed=st.integers(0, 2**32), style=st.sampled_from(["varied", "official"]))
def test_format_then_parse_round_trip(task, data, seed, style):
    sample, human, gpt = data.draw(case(task))
    conversation = build_conversation(task, sample, seed, style=style)
    assert [turn["from"] for turn in conversation] == ["human", "gpt"]
    assert conversation[0]["value"].startswith("<image>\n")
    check(parse_response(conversation[0]["value"], expected_length=None), human)
    check(parse_response(conversation[1]["value"], expected_length=None), gpt)


def test_official_style_reproduces_the_official_example_exactly():
    conversation = build_conversation(
        "segment", Sample(expression="road", tokens=placeholder_tokens()), style="official"
    )
    assert conversation == [
        {"from": "human", "value": "<image>\nSegment <ref>road</ref>."},
        {"from": "gpt", "value": "The mask appears at <|mt_start|>" + "<|mt_0|>" * 32 + "<|mt_end|>."},
    ]


@pytest.mark.shared
def test_official_jsonl_is_reproduced(shared_dir):
    path = shared_dir / "data" / "himtok-examples" / "anns" / "seg_data_with_mask.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert records
    for record in records:
        expression = parse_response(record["conversations"][0]["value"]).refs[0].text
        rebuilt = build_conversation(
            "segment", {"expression": expression, "tokens": placeholder_tokens()}, seed=123, style="official"
        )
        assert rebuilt == record["conversations"]


def test_official_rec_prompt():
    sample = Sample(expression="the left cup", tokens=[1] * 32, box=(0, 0, 10, 10), width=20, height=20)
    human = build_conversation("rec", sample, style="official")[0]["value"]
    assert (
        human
        == "<image>\nFirst create the segmentation mask for <ref>the left cup</ref>, then identify its bounding box."
    )


@given(st.integers(0, 10**9))
def test_same_seed_same_conversation(seed):
    sample = {"expression": "cat", "tokens": [4] * 32}
    assert build_conversation("segment", sample, seed) == build_conversation("segment", sample, seed)


def test_seeds_spread_over_the_phrasings():
    sample = {"expression": "cat", "tokens": [4] * 32}
    humans = {build_conversation("segment", sample, seed)[0]["value"] for seed in range(200)}
    gpts = {build_conversation("segment", sample, seed)[1]["value"] for seed in range(200)}
    assert len(humans) >= 10 and len(gpts) >= 10
    official = {
        build_conversation("segment", sample, seed, style="official")[0]["value"] for seed in range(20)
    }
    assert official == {"<image>\nSegment <ref>cat</ref>."}


def test_aliases_build_the_same_as_their_task():
    sample = Sample(expression="x", tokens=[1, 2], answer=True, box=(0, 0, 1, 1), width=2, height=2)
    for alias, name in TASK_ALIASES.items():
        if name in ("reasoning", "mask_perception", "multi_target"):
            continue
        assert build_conversation(alias, sample, 5) == build_conversation(name, sample, 5)
        assert get_task(alias) is TASKS[name]


def test_exists_without_answer_follows_tokens():
    absent = build_conversation("exists", {"expression": "zebra"}, 1)
    assert parse_response(absent[1]["value"]).answers == (False,)
    present = build_conversation("exists", {"expression": "zebra", "tokens": [3] * 32}, 1)
    assert parse_response(present[1]["value"]).answers == (True,)


def test_no_image_prefix_option():
    conversation = build_conversation(
        "segment", {"expression": "cat", "tokens": [1]}, image=False, style="official"
    )
    assert conversation[0]["value"] == "Segment <ref>cat</ref>."


@pytest.mark.parametrize(
    ("task", "sample", "message"),
    [
        ("segment", {"tokens": [1]}, "expression"),
        ("segment", {"expression": "cat"}, "sample.tokens"),
        ("segment", {"expression": "a <ref>b", "tokens": [1]}, "reserved"),
        ("segment", {"expression": "  ", "tokens": [1]}, "empty"),
        ("segment", {"expression": "cat", "tokens": [1], "colour": "red"}, "unknown sample fields"),
        ("segment", {"expression": "cat", "tokens": [5000]}, "outside"),
        ("box", {"expression": "cat", "box": (0, 0, 1, 1)}, "sample.width"),
        ("segment_n_tokens", {"expression": "cat", "tokens": [1] * 33}, "1..32"),
        ("segment_n_tokens", {"expression": "cat", "tokens": [1] * 4, "n_tokens": 5}, "n_tokens"),
        ("exists", {"expression": "cat", "answer": "maybe"}, "True, False or None"),
        ("reasoning", {"question": "why?", "tokens": [1]}, "sample.answer"),
        ("mask_perception", {"tokens": [1], "options": ["a", "b"], "answer": 2}, "option index"),
        ("mask_perception", {"tokens": [1], "options": ["a", "b"], "answer": "c"}, "not one of the options"),
        ("mask_perception", {"tokens": [1], "options": ["a\nb"], "answer": 0}, "one line"),
        ("multi_target", {"targets": []}, "non-empty"),
        ("multi_target", {"targets": [{"expression": "a"}]}, "targets\\[0\\]"),
        ("nonsense", {}, "unknown task"),
    ],
)
def test_bad_samples_raise_value_error(task, sample, message):
    with pytest.raises(ValueError, match=message):
        build_conversation(task, sample, 0)


def test_bad_style_and_seed():
    with pytest.raises(ValueError, match="style"):
        build_conversation("segment", {"expression": "a", "tokens": [1]}, 0, style="fancy")
    with pytest.raises(ValueError, match="seed"):
        build_conversation("segment", {"expression": "a", "tokens": [1]}, 1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [1, 7, 16, 32])
def test_segment_n_tokens_states_and_keeps_the_count(n):
    codes = list(range(100, 132))
    for seed in range(12):
        human, gpt = build_conversation(
            "segment_n_tokens", {"expression": "cat", "tokens": codes, "n_tokens": n}, seed
        )
        assert str(n) in human["value"]
        parsed = parse_response(gpt["value"], expected_length=n)
        assert parsed.clean and parsed.mask_tokens == tuple(codes[:n])


def test_mask_perception_letters_match_the_options():
    sample = {"tokens": [9] * 32, "options": ["left dog", "right dog", "the cat"], "answer": "the cat"}
    human, gpt = build_conversation("mask_perception", sample, 4, style="official")
    assert human["value"].endswith("A. left dog\nB. right dog\nC. the cat")
    assert gpt["value"] == "The answer is C. <ref>the cat</ref>."
