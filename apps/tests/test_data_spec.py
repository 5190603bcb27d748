"""--data spec parsing: accepted forms, and one-line errors for everything malformed."""

from __future__ import annotations

from pathlib import Path

import pytest
from himtok_apps.data import parse_data_spec
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "ann.json").write_text("{}")
    (tmp_path / "masks").mkdir()
    (tmp_path / "lines.jsonl").write_text("")
    return {"json": tmp_path / "ann.json", "dir": tmp_path / "masks", "jsonl": tmp_path / "lines.jsonl"}


def test_coco_with_images_options_and_weight(files: dict[str, Path]) -> None:
    spec = parse_data_spec(f"coco:{files['json']},{files['dir']}?min_area=0.01&context=1.5&crowd=1:2.5")
    assert spec.kind == "coco"
    assert spec.path == files["json"] and spec.extra == files["dir"]
    assert spec.weight == 2.5
    assert spec.min_area == 0.01 and spec.context == 1.5 and spec.options["crowd"] == 1


def test_defaults_without_weight_or_options(files: dict[str, Path]) -> None:
    spec = parse_data_spec(f"pngdir:{files['dir']}")
    assert (spec.weight, spec.context, spec.min_area, spec.limit, spec.extra) == (1.0, None, 0.0, None, None)
    assert spec.augment is True
    assert parse_data_spec(f"pngdir:{files['dir']}?augment=0").augment is False


def test_labelmap_ignore_is_repeatable(files: dict[str, Path]) -> None:
    spec = parse_data_spec(f"labelmap:{files['dir']}?ignore=11&ignore=0")
    assert spec.options["ignore"] == [11, 0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("coco", "expected KIND:PATH"),
        ("tfrecord:{json}", "unknown kind 'tfrecord'"),
        ("coco:/no/such/file.json", "does not exist"),
        ("pngdir:{json}", "is not a folder"),
        ("coco:{dir}", "is not a file"),
        ("coco:{json}:0", "weight must be a positive number"),
        ("coco:{json}:-1", "weight must be a positive number"),
        ("coco:{json}?context=0.5", "context must be >= 1"),
        ("coco:{json}?min_area=2", "min_area is a fraction"),
        ("coco:{json}?zoom=2", "unknown option 'zoom'"),
        ("coco:{json}?context=wide", "not a valid float"),
        ("coco:{json}?augment=2", "augment is 0 or 1"),
        ("pngdir:{dir},{dir}", "expected pngdir:DIR"),
        ("jsonl:{jsonl},/no/root", "does not exist"),
    ],
)
def test_malformed_specs_raise_one_line_errors(files: dict[str, Path], text: str, message: str) -> None:
    text = text.format(**{k: str(v) for k, v in files.items()})
    with pytest.raises(ValueError, match=message) as error:
        parse_data_spec(text)
    assert "\n" not in str(error.value)
    assert text in str(error.value)


@settings(max_examples=30)
@given(weight=st.floats(min_value=1e-3, max_value=1e3), context=st.floats(min_value=1.0, max_value=8.0))
def test_weight_and_context_round_trip(
    tmp_path_factory: pytest.TempPathFactory, weight: float, context: float
) -> None:
    path = tmp_path_factory.getbasetemp() / "a.json"
    path.write_text("{}")
    spec = parse_data_spec(f"coco:{path}?context={context!r}:{weight!r}")
    assert spec.weight == weight
    assert spec.context == context
