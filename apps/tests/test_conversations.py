"""Stage-2/3 conversation data: placeholders match masks, every source is deterministic, bad records are counted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from himtok_apps.conversations import (
    HELD_OUT_SEED,
    PLACEHOLDER,
    ConversationMixture,
    ConversationSample,
    ConversationSource,
    SampleError,
    ShapesSource,
    build_conversation_mixture,
    build_conversation_source,
    count_placeholders,
    held_out_shapes,
    parse_conversation_spec,
    validate_sample,
)
from himtok_apps.data import SkipCounter
from himtok_apps.data.shapes import PALETTE, SceneConfig, absent_references, make_scene, references
from himtok_prompt_templates import build_conversation, parse_response, placeholder_tokens
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

OFFICIAL_ANSWER = "The mask appears at " + "<|mt_start|>" + "<|mt_0|>" * 32 + "<|mt_end|>" + "."


def assert_consistent(sample: ConversationSample) -> None:
    """The invariants every source promises."""
    assert sample.image.mode == "RGB"
    assert sample.turns[0]["from"] == "human" and "<image>" in sample.turns[0]["value"]
    assert sum(count_placeholders(t["value"]) for t in sample.turns) == len(sample.masks)
    assert sum(t["value"].count("<|mt_start|>") for t in sample.turns) == len(sample.masks)
    for mask in sample.masks:
        assert mask.dtype == np.bool_ and mask.shape == (sample.image.height, sample.image.width)


def same(a: ConversationSample, b: ConversationSample) -> bool:
    return (
        a.turns == b.turns
        and a.key == b.key
        and len(a.masks) == len(b.masks)
        and all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks, strict=True))
        and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    )


# --- placeholder form -------------------------------------------------------------------------------


def test_prompt_templates_with_32_zeros_render_exactly_the_official_placeholder() -> None:
    assert PLACEHOLDER == "<|mt_start|>" + "<|mt_0|>" * 32 + "<|mt_end|>"
    turns = build_conversation(
        "segment", {"expression": "road", "tokens": placeholder_tokens()}, style="official"
    )
    assert turns == [
        {"from": "human", "value": "<image>\nSegment <ref>road</ref>."},
        {"from": "gpt", "value": OFFICIAL_ANSWER},
    ]  # character for character the official example JSONL
    assert count_placeholders(turns[1]["value"]) == 1


# --- spec parsing -----------------------------------------------------------------------------------


def test_spec_forms_weights_and_task_mixes(tmp_path: Path) -> None:
    assert parse_conversation_spec("shapes:").weight == 1.0
    starred = parse_conversation_spec("shapes:seed=3*2")
    assert (starred.seed, starred.weight) == (3, 2.0)
    coloned = parse_conversation_spec("shapes:?seed=4&absent=0:0.5")
    assert (coloned.seed, coloned.weight, coloned.options["absent"]) == (4, 0.5, 0.0)
    mixed = parse_conversation_spec("shapes:tasks=res=2,rec=1&exprs=relation=1")
    assert (
        mixed.tasks["segment"] == 2.0
        and mixed.tasks["segment_then_box"] == 1.0
        and mixed.tasks["exists"] == 0
    )
    assert mixed.options["exprs"]["relation"] == 1.0 and mixed.options["exprs"]["color"] == 0.0  # type: ignore[index]
    (tmp_path / "a.json").write_text("{}")
    coco = parse_conversation_spec(f"coco:{tmp_path / 'a.json'},{tmp_path}?tasks=multi=1&min_area=0.01:3")
    assert coco.path == tmp_path / "a.json" and coco.extra == tmp_path and coco.weight == 3.0
    assert coco.tasks["multi_target"] == 1.0 and coco.style == "varied"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tfrecord:x", "unknown kind 'tfrecord'"),
        ("shapes:zoom=2", "unknown option 'zoom'"),
        ("shapes:seed=x", "not a valid int"),
        (f"shapes:seed={HELD_OUT_SEED}", "seed must be in"),
        ("shapes:tasks=segment=0", "at least one positive weight"),
        ("shapes:tasks=dance=1", "unknown task 'dance'"),
        ("shapes:exprs=colour=1", "unknown expression form 'colour'"),
        ("shapes:style=fancy", "style must be one of"),
        ("shapes:split=test", "split is train or eval"),
        ("shapes:absent=1.5", "absent must be in"),
        ("shapes::0", "weight must be a positive number"),
        ("refexp:{json}?tasks=mask_perception=1", "unknown task 'mask_perception'"),
        ("official:/no/such/meta.json", "is not a file"),
        ("official", "expected official:META_JSON"),
        ("coco:{json},/no/folder", "is not a folder"),
    ],
)
def test_malformed_specs_raise_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "a.json").write_text("{}")
    text = text.format(json=tmp_path / "a.json")
    with pytest.raises(ValueError, match=message) as error:
        parse_conversation_spec(text)
    assert "\n" not in str(error.value) and text in str(error.value)


def test_scene_options_are_checked_when_the_source_is_built() -> None:
    with pytest.raises(ValueError, match="colors must be distinct names") as error:
        build_conversation_source("shapes:colors=red,mauve")
    assert "shapes:colors=red,mauve" in str(error.value)
    with pytest.raises(ValueError, match="one positive weight"):
        ShapesSource(tasks={"segment": 0.0})
    with pytest.raises(ValueError, match="known tasks"):
        ShapesSource(tasks={"reasoning": 1.0})  # no reasoning questions can be made about shapes


# --- shapes -----------------------------------------------------------------------------------------

COLOR_NAMES = tuple(PALETTE)


def _noun(words: str, shapes: list[dict[str, object]]) -> set[int]:
    parts = words.split()
    color = parts[0] if parts[0] in COLOR_NAMES else None
    kind = parts[-1]
    assert len(parts) == (2 if color else 1), words
    return {
        i
        for i, s in enumerate(shapes)
        if (color is None or s["color"] == color) and (kind == "shape" or s["kind"] == kind)
    }


def resolve(expression: str, shapes: list[dict[str, object]]) -> set[int]:
    """Every shape the expression can mean under its strict reading, computed from the masks alone."""
    assert expression.startswith("the ")
    words = expression[4:]
    sides = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}
    for relation, (axis, sign) in sides.items():
        if f" {relation} the " in words:
            head, anchor_words = words.split(f" {relation} the ")
            anchors = _noun(anchor_words, shapes)
            assert len(anchors) == 1, expression
            (b,) = anchors
            return {
                a
                for a in _noun(head, shapes) - {b}
                if sign * (shapes[a]["center"][axis] - shapes[b]["center"][axis]) > 0  # type: ignore[index]
            }
    first, _, rest = words.partition(" ")
    measures = {
        "largest": lambda s: -s["area"],
        "smallest": lambda s: s["area"],
        "leftmost": lambda s: s["center"][0],
        "rightmost": lambda s: -s["center"][0],
        "topmost": lambda s: s["center"][1],
        "bottommost": lambda s: -s["center"][1],
    }
    if first in measures:
        group = _noun(rest, shapes)
        best = min(measures[first](shapes[i]) for i in group)
        return {i for i in group if measures[first](shapes[i]) == best}
    return _noun(words, shapes)


def describe(scene_shapes: tuple) -> list[dict[str, object]]:  # type: ignore[type-arg]
    out = []
    for s in scene_shapes:
        ys, xs = np.nonzero(s.mask)
        out.append({"color": s.color, "kind": s.kind, "area": len(xs), "center": (xs.mean(), ys.mean())})
    return out


@given(seed=st.integers(0, HELD_OUT_SEED - 1), index=st.integers(0, 10**6))
def test_every_shapes_expression_names_exactly_its_shape(seed: int, index: int) -> None:
    config = SceneConfig()
    scene = make_scene(seed, index, config)
    shapes = describe(scene.shapes)
    assert config.min_shapes <= len(shapes) <= config.max_shapes
    pairs = [(s["color"], s["kind"]) for s in shapes]
    assert len(set(pairs)) == len(pairs)
    for i, shape in enumerate(scene.shapes):
        x1, y1, x2, y2 = shape.box
        assert min(x2 - x1, y2 - y1) >= config.min_extent * config.size - 2  # large-ish objects
        for other in scene.shapes[i + 1 :]:
            assert not (shape.mask & other.mask).any()
        mean = scene.image[shape.mask].astype(float).mean(axis=0)
        nearest = min(PALETTE, key=lambda c: float(np.linalg.norm(np.array(PALETTE[c]) - mean)))
        assert nearest == shape.color  # the pixels really have the colour the expressions name
    found = references(scene)
    assert {r.target for r in found if r.form == "color_kind"} == set(range(len(shapes)))
    for ref in found:
        assert resolve(ref.expression, shapes) == {ref.target}, ref
    for ref in absent_references(scene, config):
        assert ref.target is None and resolve(ref.expression, shapes) == set(), ref


@given(index=st.integers(0, 10**6))
def test_shapes_samples_point_at_the_named_shape_or_at_nothing(index: int) -> None:
    source = build_conversation_source(
        "shapes:absent=0.3&tasks=segment=1,exists=1,segment_then_box=1,multi=1"
    )
    sample = source.sample(index)
    assert_consistent(sample)
    scene = make_scene(int(sample.meta["scene_seed"]), index)  # type: ignore[call-overload]
    shapes = describe(scene.shapes)
    if sample.meta["absent"]:
        assert sample.masks == [] and sample.meta["task"] == "exists"
        assert resolve(str(sample.meta["expression"]), shapes) == set()
        assert parse_response(sample.turns[1]["value"]).answer is False
        return
    multi = sample.meta["task"] == "multi_target"
    targets = sample.meta["targets"] if multi else [sample.meta["target"]]
    expressions = sample.meta["expressions"] if multi else [sample.meta["expression"]]
    for target, expression, mask in zip(targets, expressions, sample.masks, strict=True):  # type: ignore[call-overload]
        assert resolve(expression, shapes) == {target}
        assert np.array_equal(mask, scene.shapes[target].mask)
        assert f"<ref>{expression}</ref>" in sample.turns[0]["value"]


def test_shapes_is_deterministic_and_the_held_out_split_is_disjoint() -> None:
    source = build_conversation_source("shapes:")
    again = build_conversation_source("shapes:")
    assert same(source.sample(17), again.sample(17))
    assert not same(source.sample(17), source.sample(18))
    held = held_out_shapes(30)
    assert same(held[5], held_out_shapes(6)[5])
    assert all(s.meta["split"] == "eval" and s.meta["scene_seed"] == HELD_OUT_SEED for s in held)
    train_images = {np.asarray(source.sample(i).image).tobytes() for i in range(30)}
    assert not train_images & {np.asarray(s.image).tobytes() for s in held}
    assert held_out_shapes(3, seed=2)[0].meta["scene_seed"] == HELD_OUT_SEED + 2
    as_spec = build_conversation_source("shapes:split=val")  # val is an alias of eval
    assert same(as_spec.sample(4), held[4])


def test_shapes_defaults_are_small_images_with_some_absent_questions() -> None:
    samples = held_out_shapes(300)
    assert all(s.size == (112, 112) for s in samples)
    absent = [s for s in samples if s.meta["absent"]]
    assert 0.08 < len(absent) / len(samples) < 0.25
    assert all(s.masks == [] and s.turns[1]["value"].startswith("No") for s in absent)
    tasks = {str(s.meta["task"]) for s in samples if not s.meta["absent"]}
    assert tasks == {"segment", "exists", "segment_then_box"}
    rec = next(s for s in samples if s.meta["task"] == "segment_then_box")
    answer = rec.turns[1]["value"]
    assert answer.index(PLACEHOLDER) < answer.index("<box>")  # REC: the box follows the mask
    only = held_out_shapes(40, "shapes:tasks=segment=1&absent=0&size=64&max_shapes=1")
    assert all(s.meta["task"] == "segment" and len(s.masks) == 1 and s.size == (64, 64) for s in only)


# --- official -------------------------------------------------------------------------------------


def _image(path: Path, width: int, height: int) -> None:
    rng = np.random.default_rng(width * height)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)


def _mask(path: Path, width: int, height: int, soft: bool = False) -> np.ndarray:
    array = np.zeros((height, width), np.uint8)
    array[2 : height // 2, 3 : width // 2] = 255
    if soft:
        array[height // 2, 3 : width // 2] = 100  # a soft edge below the threshold
    Image.fromarray(array).save(path)
    return array >= 128


def _line(image: str, mask: object, human: str, answer: str) -> str:
    record: dict[str, object] = {
        "image": image,
        "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": answer}],
    }
    if mask is not None:
        record["mask"] = mask
    return json.dumps(record)


@pytest.fixture
def official_meta(tmp_path: Path) -> Path:
    """An official-layout copy under a renamed folder, with every kind of bad line."""
    data = tmp_path / "renamed"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    (data / "anns").mkdir()
    _image(data / "images" / "a.png", 40, 30)
    _image(data / "images" / "b.png", 20, 10)
    _mask(data / "masks" / "a.png", 40, 30, soft=True)
    _mask(data / "masks" / "a2.png", 40, 30)
    _mask(data / "masks" / "b.png", 20, 10)
    codes = "<|mt_start|>" + "".join(f"<|mt_{k}|>" for k in range(32)) + "<|mt_end|>"
    lines = [
        _line("images/a.png", "masks/a.png", "<image>\nSegment <ref>x</ref>.", OFFICIAL_ANSWER),  # 1 good
        _line(
            "images/b.png", "masks/b.png", "Segment <ref>y</ref>.", f"Here {codes}."
        ),  # 2 good: <image> added, codes
        _line(
            "images/a.png",
            ["masks/a.png", "masks/a2.png"],
            "<image>\nSegment x and y.",
            f"{PLACEHOLDER} and {PLACEHOLDER}",
        ),  # 3 good: two masks
        _line("images/nope.png", "masks/a.png", "<image>\nSegment x.", OFFICIAL_ANSWER),  # 4 missing image
        _line("images/a.png", "masks/b.png", "<image>\nSegment x.", OFFICIAL_ANSWER),  # 5 mask size
        _line("images/a.png", "masks/a.png", "<image>\nSegment x.", "It is on the left."),  # 6 no placeholder
        _line("images/a.png", None, "<image>\nSegment x.", OFFICIAL_ANSWER),  # 7 placeholder, no mask
        '{"image": "images/a.png", "conversations": [',  # 8 malformed JSON
        _line(
            "images/a.png",
            "masks/a.png",
            "<image>\nSegment x.",
            "<|mt_start|>" + "<|mt_0|>" * 31 + "<|mt_end|>",
        ),  # 9 31-token placeholder
        "",
        _line("images/a.png", "masks/a.png", "<image>\nSegment x.", OFFICIAL_ANSWER),  # 11 good
    ]
    (data / "anns" / "train.jsonl").write_text("\n".join(lines) + "\n")
    meta = {
        "demo": {
            "root": "example",
            "annotation": "example/anns/train.jsonl",
            "data_augment": False,
            "repeat_time": 2,
            "length": 10,
        }
    }
    (data / "meta.json").write_text(json.dumps(meta))
    return data / "meta.json"


def test_official_meta_reads_like_the_official_loader(official_meta: Path) -> None:
    source = build_conversation_source(f"official:{official_meta}")
    assert len(source) == 2 * 10  # blank line dropped, repeat_time 2
    first = source.sample(0)
    assert_consistent(first)
    assert first.turns[1]["value"] == OFFICIAL_ANSWER and first.key == "demo line 1"
    expected = np.asarray(Image.open(official_meta.parent / "masks" / "a.png")) >= 128
    assert np.array_equal(first.masks[0], expected) and first.masks[0].sum() < (expected | True).sum()
    second = source.sample(1)
    assert second.turns[0]["value"] == "<image>\nSegment <ref>y</ref>."  # <image> prepended
    assert second.turns[1]["value"] == f"Here {PLACEHOLDER}."  # pre-computed codes back to placeholders
    assert second.size == (10, 20)
    assert len(source.sample(2).masks) == 2
    assert same(source.sample(10), first)  # the repeat
    base = official_meta.parent.parent / "launch"
    base.mkdir()
    (base / "example").symlink_to(
        official_meta.parent
    )  # the official layout: paths relative to a launch folder
    with_base = build_conversation_source(f"official:{official_meta},{base}")
    assert same(with_base.sample(0), first)
    with pytest.raises(ValueError, match="annotation of 'demo' unreadable") as error:
        build_conversation_source(f"official:{official_meta},{official_meta.parent}")  # taken literally
    assert "\n" not in str(error.value)


def test_official_bad_lines_are_skipped_and_counted(official_meta: Path) -> None:
    source = build_conversation_source(f"official:{official_meta}")
    reasons = {}
    for index in range(10):
        try:
            assert_consistent(source.sample(index))
        except SampleError as error:
            reasons[source.item_key(index)] = str(error).split(":")[0]
    assert reasons == {
        "demo line 4": "missing image",
        "demo line 5": "mask size",
        "demo line 6": "mask count",
        "demo line 7": "mask count",
        "demo line 8": "malformed JSON",
        "demo line 9": "malformed placeholder",
    }
    printed: list[str] = []
    skips = SkipCounter(echo=printed.append, echo_limit=3)
    mixture = ConversationMixture([source], seed=1, skips=skips)
    batch = mixture.batch(0, 64)
    assert len(batch) == 64 and all(
        s.key in {"demo line 1", "demo line 2", "demo line 3", "demo line 11"} for s in batch
    )
    assert skips.count() == 6  # every bad line drawn, each counted once
    assert skips.reasons == {
        "missing image": 1,
        "mask size": 1,
        "mask count": 2,
        "malformed JSON": 1,
        "malformed placeholder": 1,
    }
    assert (
        len(printed) == 4 and printed[0].startswith("skipped demo line") and "only the first 3" in printed[-1]
    )


@pytest.mark.shared
def test_shared_himtok_examples_meta(shared_dir: Path) -> None:
    folder = shared_dir / "data" / "himtok-examples"
    source = build_conversation_source(f"official:{folder / 'data_seg.json'}")
    assert len(source) == 4 * 100
    lines = (folder / "anns" / "seg_data_with_mask.jsonl").read_text().splitlines()
    for index in range(4):
        sample = source.sample(index)
        assert_consistent(sample)
        assert sample.turns == json.loads(lines[index])["conversations"]
        png = np.asarray(Image.open(folder / "masks" / f"{index}.png").convert("L"))
        assert np.array_equal(sample.masks[0], png >= 128)


# --- refexp ---------------------------------------------------------------------------------------


@pytest.mark.shared
def test_shared_refexp_reads_coco_instances(shared_dir: Path) -> None:
    file = shared_dir / "data" / "refexp" / "refcocos-24.jsonl"
    source = build_conversation_source(f"refexp:{file}")
    assert len(source) == 24
    records = [json.loads(line) for line in file.read_text().splitlines()]
    instances = json.loads((shared_dir / "data" / "coco-subset" / "instances_train.json").read_text())
    annotations = {a["id"]: a for a in instances["annotations"]}
    for index in (0, 5, 23):
        sample = source.sample(index)
        assert_consistent(sample)
        record = records[index]
        assert f"<ref>{record['expression']}</ref>" in sample.turns[0]["value"]
        assert sample.meta["task"] == "segment" and len(sample.masks) == 1
        if record["split"] == "train":
            h, w = sample.size
            rle = mask_utils.merge(
                mask_utils.frPyObjects(annotations[record["ann_id"]]["segmentation"], h, w)
            )
            assert np.array_equal(sample.masks[0], mask_utils.decode(rle).astype(bool))
    rec = build_conversation_source(f"refexp:{file}?tasks=rec=1&style=official").sample(0)
    assert rec.turns[1]["value"].index(PLACEHOLDER) < rec.turns[1]["value"].index("<box>")


def test_refexp_lines_without_an_annotation_are_counted(tmp_path: Path) -> None:
    coco = tmp_path / "coco"
    (coco / "images").mkdir(parents=True)
    _image(coco / "images" / "p.jpg", 32, 24)
    instances = {
        "images": [{"id": 1, "file_name": "p.jpg", "width": 32, "height": 24}],
        "annotations": [
            {
                "id": 5,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": [[2, 2, 20, 2, 20, 15, 2, 15]],
            }
        ],
        "categories": [{"id": 1, "name": "box"}],
    }
    (coco / "instances_val.json").write_text(json.dumps(instances))
    rows = [
        {"image": "p.jpg", "split": "val", "ann_id": 5, "expression": "the grey box", "bbox": [2, 2, 20, 15]},
        {"image": "p.jpg", "split": "val", "ann_id": 99, "expression": "nothing"},
        {"image": "p.jpg", "split": "train", "ann_id": 5, "expression": "no train file"},
    ]
    file = tmp_path / "refs.jsonl"
    file.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    skips = SkipCounter()
    source = build_conversation_source(f"refexp:{file}?root={coco}", skips)
    assert len(source) == 1 and skips.count() == 3
    assert set(skips.reasons) == {"unknown annotation", "missing instances", "malformed JSON"}
    sample = source.sample(0)
    assert_consistent(sample)
    assert sample.masks[0].sum() == 18 * 13 and sample.meta["box"] == (2.0, 2.0, 20.0, 15.0)


# --- coco -----------------------------------------------------------------------------------------

FAMILIES = (
    "segment",
    "exists",
    "segment_then_box",
    "box",
    "box_to_mask",
    "points_to_mask",
    "box_points_to_mask",
    "mask_perception",
    "multi_target",
)


@pytest.fixture(scope="module")
def coco_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("coco")
    (folder / "images").mkdir()

    def rect(ident: int, image: int, category: int, x: int, y: int, w: int, h: int) -> dict[str, object]:
        polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
        return {
            "id": ident,
            "image_id": image,
            "category_id": category,
            "segmentation": [polygon],
            "iscrowd": 0,
            "bbox": [x, y, w, h],
        }

    images = [{"id": i, "file_name": f"{i}.jpg", "width": 48, "height": 36} for i in (1, 2, 3)]
    for record in images:
        _image(folder / "images" / str(record["file_name"]), 48, 36)
    annotations = [
        rect(10, 1, 1, 2, 2, 10, 10),  # cat
        rect(11, 1, 2, 20, 2, 8, 8),  # dog
        rect(12, 1, 2, 30, 20, 8, 8),  # dog again: "dog" is not a referring expression here
        rect(13, 2, 3, 5, 5, 30, 20),  # car
        rect(14, 2, 1, 38, 25, 6, 6),  # cat
        rect(15, 3, 2, 10, 10, 12, 12),  # dog alone
        {"id": 16, "image_id": 3, "category_id": 1, "segmentation": "garbage", "iscrowd": 0},
    ]
    categories = [{"id": i, "name": n} for i, n in enumerate(["cat", "dog", "car", "boat", "bus", "kite"], 1)]
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_coco_generates_every_task_family(coco_json: Path) -> None:
    tasks = ",".join(f"{f}=1" for f in FAMILIES)
    skips = SkipCounter()
    source = build_conversation_source(f"coco:{coco_json}?tasks={tasks}&absent=0.5&variants=40", skips)
    assert len(source) == 3 * 40 and skips.count() == 1  # the garbage annotation
    samples = [source.sample(i) for i in range(len(source))]
    seen = {str(s.meta["task"]) for s in samples}
    assert seen == set(FAMILIES)
    names = {1: "cat", 2: "dog", 3: "car"}
    present = {1: {"cat", "dog"}, 2: {"car", "cat"}, 3: {"dog"}}
    for sample in samples:
        assert_consistent(sample)
        task, image = sample.meta["task"], int(sample.meta["image_id"])  # type: ignore[call-overload]
        gpt = sample.turns[1]["value"]
        if task == "exists" and sample.meta["absent"]:
            assert sample.masks == [] and parse_response(gpt).answer is False
            assert sample.meta["expression"] not in present[image]
        elif task == "exists":
            assert parse_response(gpt).answer is True and sample.meta["expression"] in present[image]
        if task in ("segment", "segment_then_box", "box"):
            assert not (image == 1 and sample.meta["expression"] == "dog")  # two dogs: not a referring target
        if task == "segment_then_box":
            assert gpt.index(PLACEHOLDER) < gpt.index("<box>")
        if task == "box":
            assert sample.masks == [] and "<box>" in gpt
        if task == "mask_perception":
            assert count_placeholders(sample.turns[0]["value"]) == 1 and sample.answer_masks == 0
            assert f"<ref>{sample.meta['expression']}</ref>" in gpt
        if task == "multi_target":
            assert len(sample.masks) >= 2 and sample.answer_masks == len(sample.masks)
        if task == "box_to_mask":
            box = parse_response(sample.turns[0]["value"]).boxes[0].to_pixels(48, 36)
            ys, xs = np.nonzero(sample.masks[0])
            assert np.allclose(box, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), atol=1)
    assert same(
        source.sample(7),
        build_conversation_source(f"coco:{coco_json}?tasks={tasks}&absent=0.5&variants=40").sample(7),
    )
    union = next(
        s
        for s in samples
        if s.meta["task"] == "exists" and s.meta.get("expression") == "dog" and s.meta["image_id"] == 1
    )
    assert union.masks[0].sum() == 64 + 64  # both dogs: open-vocabulary answers cover every instance
    assert {names[c] for c in (1, 2, 3)} >= {
        str(s.meta["expression"]) for s in samples if s.meta["task"] == "segment"
    }


def test_coco_missing_image_is_skipped_by_the_mixture(coco_json: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no image found") as error:
        build_conversation_source(f"coco:{coco_json},{tmp_path}")  # a wrong IMAGES_DIR is a flag error
    assert "\n" not in str(error.value)
    (tmp_path / "images").mkdir()
    for name in ("1.jpg", "3.jpg"):  # image 2 is missing
        (tmp_path / "images" / name).write_bytes((coco_json.parent / "images" / name).read_bytes())
    skips = SkipCounter()
    source = build_conversation_source(f"coco:{coco_json},{tmp_path / 'images'}?variants=4", skips)
    mixture = ConversationMixture([source], skips=skips)
    batch = mixture.batch(0, 24)
    assert {s.meta["image_id"] for s in batch} == {1, 3}
    assert skips.reasons["missing image"] == 1  # counted once, however often drawn
    assert skips.summary()["examples"][source.name] == ["annotation 16", "image 2.jpg"]  # type: ignore[index]


@pytest.mark.shared
def test_shared_coco_subset_conversations(shared_dir: Path) -> None:
    source = build_conversation_source(f"coco:{shared_dir / 'data' / 'coco-subset' / 'instances_val.json'}")
    for index in range(0, len(source), 97):
        assert_consistent(source.sample(index))


# --- mixture --------------------------------------------------------------------------------------


class _Numbers(ConversationSource):
    """A source whose odd indices are bad."""

    def __init__(self, name: str, size: int = 50) -> None:
        self.name, self.size = name, size

    def __len__(self) -> int:
        return self.size

    def item_key(self, index: int) -> str:
        return f"item {index}"

    def sample(self, index: int) -> ConversationSample:
        if index % 2:
            raise SampleError(f"odd index: {index}")
        turns = [{"from": "human", "value": "<image>\nhi"}, {"from": "gpt", "value": f"{index}"}]
        return validate_sample(ConversationSample(Image.new("RGB", (4, 4)), turns, [], self.name, str(index)))


def test_mixture_weights_determinism_and_rank_sharding() -> None:
    mixture = ConversationMixture([_Numbers("a"), _Numbers("b")], [3, 1], seed=5)
    draws = [mixture.draw(n)[0] for n in range(4000)]
    assert 0.72 < draws.count(0) / len(draws) < 0.78
    again = ConversationMixture([_Numbers("a"), _Numbers("b")], [3, 1], seed=5)
    assert [s.key for s in mixture.batch(3, 8)] == [s.key for s in again.batch(3, 8)]
    other = ConversationMixture([_Numbers("a"), _Numbers("b")], [3, 1], seed=6)
    assert [s.key for s in mixture.batch(3, 8)] != [s.key for s in other.batch(3, 8)]
    whole = [(s.source, s.key) for s in mixture.batch(2, 8, rank=0, world_size=1)]
    shards = [(s.source, s.key) for r in range(2) for s in mixture.batch(2, 4, rank=r, world_size=2)]
    assert shards == whole  # rank r of W takes its own slice of the same global stream
    assert all(int(s.key) % 2 == 0 for s in mixture.batch(0, 32))
    assert mixture.skips.count() > 0 and set(mixture.skips.reasons) == {"odd index"}


def test_mixture_from_specs_uses_their_weights() -> None:
    mixture = build_conversation_mixture(["shapes:", "shapes:seed=1*3"], seed=0)
    assert list(mixture.probs) == [0.25, 0.75]
    assert {s.source for s in mixture.batch(0, 16)} == {"shapes:", "shapes:seed=1*3"}


def test_validate_sample_names_each_problem() -> None:
    image = Image.new("RGB", (8, 6))
    mask = np.zeros((6, 8), bool)
    good = [{"from": "human", "value": "<image>\nx"}, {"from": "gpt", "value": PLACEHOLDER}]
    validate_sample(ConversationSample(image, good, [mask], "s", "k"))
    cases = [
        (good, [], "mask count"),
        (good, [np.zeros((8, 6), bool)], "mask size"),
        (good, [np.zeros((6, 8), np.uint8)], "bad mask"),
        ([{"from": "human", "value": "x"}, good[1]], [mask], "bad conversation"),
        ([good[0], {"from": "robot", "value": "x"}], [], "bad conversation"),
        ([good[0], {"from": "gpt", "value": PLACEHOLDER[:-3]}], [mask], "malformed placeholder"),
    ]
    for turns, masks, reason in cases:
        with pytest.raises(SampleError, match=f"^{reason}"):
            validate_sample(ConversationSample(image, turns, masks, "s", "k"))
