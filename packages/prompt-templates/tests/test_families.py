import pytest
from himtok_prompt_templates import FAMILIES, TASKS, PhrasingSet, parse_response, slots_of

# The slots each family part must use, as the task fillers provide them.
EXPECTED_SLOTS = {
    ("segment", "instruction"): {"ref"},
    ("segment", "response"): {"mask"},
    ("segment_then_box", "instruction"): {"ref"},
    ("segment_then_box", "response"): {"mask", "box"},
    ("box", "instruction"): {"ref"},
    ("box", "response"): {"box"},
    ("box_to_mask", "instruction"): {"box"},
    ("box_to_mask", "response"): {"mask"},
    ("box_points_to_mask", "instruction"): {"box", "points"},
    ("box_points_to_mask", "response"): {"mask"},
    ("points_to_mask", "instruction"): {"points"},
    ("points_to_mask", "response"): {"mask"},
    ("segment_n_tokens", "instruction"): {"ref", "n_tokens"},
    ("segment_n_tokens", "response"): {"mask"},
    ("exists", "instruction"): {"ref"},
    ("exists", "response"): {"answer", "mask"},
    ("exists", "negative_response"): {"answer", "ref"},
    ("reasoning", "instruction"): {"question"},
    ("reasoning", "response"): {"ref", "mask"},
    ("mask_perception", "instruction"): {"mask", "options"},
    ("mask_perception", "response"): {"label", "ref"},
    ("multi_target", "instruction"): {"refs"},
    ("multi_target", "response"): {"items"},
    ("multi_target", "item"): {"ref", "mask"},
}

SLOT_VALUES = {
    "ref": "<ref>the dog</ref>",
    "refs": "<ref>a</ref> and <ref>b</ref>",
    "mask": "<|mt_start|><|mt_5|><|mt_end|>",
    "box": "<box>[1, 2, 3, 4]</box>",
    "points": "<point>[5, 6]</point>",
    "n_tokens": 7,
    "question": "What keeps the rain off?",
    "options": "A. the dog\nB. the cat",
    "label": "B",
    "items": "<ref>a</ref>: <|mt_start|><|mt_1|><|mt_end|>.",
}


def all_parts():
    return [
        (family.name, part, phrasings)
        for family in FAMILIES.values()
        for part, phrasings in family.parts.items()
    ]


def test_families_cover_the_required_tasks():
    assert set(FAMILIES) == set(TASKS)
    assert {(name, part) for name, part, _ in all_parts()} == set(EXPECTED_SLOTS)


@pytest.mark.parametrize(
    ("family", "part", "phrasings"), all_parts(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_at_least_ten_distinct_phrasings_with_exact_slots(family, part, phrasings):
    assert len(set(phrasings.phrasings)) == len(phrasings.phrasings) >= 10
    expected = EXPECTED_SLOTS[(family, part)]
    assert phrasings.slots == expected
    for phrasing in phrasings.phrasings:
        assert slots_of(phrasing) == expected, phrasing


@pytest.mark.parametrize(
    ("family", "part", "phrasings"), all_parts(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_only_the_answer_slot_reads_as_yes_or_no(family, part, phrasings):
    for answer, expected in (("Yes", (True,)), ("No", (False,))):
        values = {**SLOT_VALUES, "answer": answer}
        for index, phrasing in enumerate(phrasings.phrasings):
            parsed = parse_response(phrasings.render(index, values), expected_length=None)
            want = expected if "answer" in phrasings.slots else ()
            assert parsed.answers == want, phrasing


def test_official_phrasings_come_first():
    assert FAMILIES["segment"].part("instruction").phrasings[0] == "Segment {ref}."
    assert FAMILIES["segment"].part("response").phrasings[0] == "The mask appears at {mask}."
    assert FAMILIES["segment_then_box"].part("instruction").phrasings[0] == (
        "First create the segmentation mask for {ref}, then identify its bounding box."
    )
    assert FAMILIES["reasoning"].part("instruction").phrasings[0] == (
        "{question}\nWhat is the object and mask in the image?"
    )


def test_phrasing_set_rejects_wrong_slots_and_missing_values():
    with pytest.raises(ValueError, match="slots"):
        PhrasingSet(frozenset({"ref"}), ("Segment {ref} with {mask}.",))
    with pytest.raises(ValueError, match="at least one"):
        PhrasingSet(frozenset(), ())
    with pytest.raises(ValueError, match="missing slot"):
        FAMILIES["segment"].part("instruction").render(0, {})
    with pytest.raises(ValueError, match="no part"):
        FAMILIES["segment"].part("item")
