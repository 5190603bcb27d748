"""Each data kind on the shipped sample and on ../shared/data as it is; unreadable items are skipped and counted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from himtok_apps.data import (
    CocoSource,
    JsonlSource,
    LabelMapSource,
    MaskMixture,
    PngDirSource,
    SkipCounter,
    build_source,
    parse_data_spec,
)
from himtok_apps.stage1.config import SAMPLE_DIR
from PIL import Image

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"
)  # pycocotools on NumPy 2


def assert_mask(mask: np.ndarray) -> None:
    assert mask.dtype == np.float32 and mask.ndim == 2
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert mask.max() > 0.5, "every shipped and shared mask has an object"


def test_shipped_sample_is_small_and_holds_the_val_split() -> None:
    total = sum(p.stat().st_size for p in SAMPLE_DIR.iterdir())
    assert total < 4 * 2**20
    val = json.loads((SAMPLE_DIR / "instances_val.json").read_text())
    train = json.loads((SAMPLE_DIR / "instances_train.json").read_text())
    assert all(image["id"] % 10 == 0 for image in val["images"])
    assert all(image["id"] % 10 != 0 for image in train["images"])


def test_shipped_coco_sample_masks_cover_one_percent() -> None:
    source = CocoSource(SAMPLE_DIR / "instances_val.json", crowd=True)
    assert len(source) == 236
    for index in range(0, len(source), 40):
        mask = source.load(index)
        assert_mask(mask)
        assert mask.mean() >= 0.0099


def test_coco_min_area_and_limit_filter(tmp_path: Path) -> None:
    every = CocoSource(SAMPLE_DIR / "instances_val.json")
    large = CocoSource(SAMPLE_DIR / "instances_val.json", min_area=0.1)
    assert 0 < len(large) < len(every)
    assert all(large.load(i).mean() >= 0.0999 for i in range(len(large)))
    assert len(CocoSource(SAMPLE_DIR / "instances_val.json", limit=5)) == 5


@pytest.mark.shared
def test_shared_coco_subset_with_images_and_crowds(shared_dir: Path) -> None:
    folder = shared_dir / "data" / "coco-subset"
    spec = parse_data_spec(f"coco:{folder / 'instances_val.json'},{folder / 'images'}?crowd=1")
    source = build_source(spec)
    assert len(source) == 515  # every val annotation, crowd RLEs included
    crowd_index = next(i for i in range(len(source)) if isinstance(source.rles[i]["counts"], bytes))
    assert_mask(source.load(crowd_index))


@pytest.mark.shared
def test_shared_davis_pngdir(shared_dir: Path) -> None:
    source = build_source(parse_data_spec(f"pngdir:{shared_dir / 'data' / 'davis2016-val'}"))
    assert len(source) == 1376
    mask = source.load(0)
    assert_mask(mask)
    assert mask.shape == (216, 384)
    assert set(np.unique(mask)) <= {0.0, 1.0}


@pytest.mark.shared
def test_shared_camvid_labelmap_reads_classes_json_above(shared_dir: Path) -> None:
    source = build_source(
        parse_data_spec(f"labelmap:{shared_dir / 'data' / 'camvid-labels' / 'val'}?ignore=11")
    )
    assert isinstance(source, LabelMapSource)
    assert source.classes is not None and source.classes[8] == "Car"
    names = {source.item_name(i).split("#")[1] for i in range(len(source))}
    assert "Unlabelled" not in names and {"Sky", "Road", "Car"} <= names
    assert_mask(source.load(0))


@pytest.mark.shared
def test_shared_himtok_examples_jsonl(shared_dir: Path) -> None:
    spec = parse_data_spec(
        f"jsonl:{shared_dir / 'data' / 'himtok-examples' / 'anns' / 'seg_data_with_mask.jsonl'}"
    )
    source = build_source(spec)
    assert len(source) == 4
    mask = source.load(1)
    assert_mask(mask)
    soft = (mask > 0) & (mask < 1)
    assert soft.any(), "the official example masks have soft edges, which must be kept"


def write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def test_corrupt_png_is_skipped_and_counted(tmp_path: Path) -> None:
    good = np.zeros((20, 30), np.uint8)
    good[5:15, 5:20] = 255
    write_png(tmp_path / "a.png", good)
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    skips = SkipCounter()
    source = PngDirSource(tmp_path)
    mixture = MaskMixture([source], seed=0, skips=skips)
    batch = mixture.batch(0, 16)
    assert batch.shape == (16, 256, 256)
    assert skips.count() == 1
    assert skips.summary()["examples"] == {source.name: ["b.png"]}


def test_corrupt_coco_annotations_are_skipped_and_counted(tmp_path: Path) -> None:
    data = {
        "images": [{"id": 1, "width": 40, "height": 30}],
        "annotations": [
            {"id": 10, "image_id": 1, "segmentation": [[2, 2, 30, 2, 30, 20, 2, 20]], "iscrowd": 0},
            {"id": 11, "image_id": 1, "segmentation": "garbage", "iscrowd": 0},
            {"id": 12, "image_id": 7, "segmentation": [[2, 2, 30, 2, 30, 20]], "iscrowd": 0},
            {"id": 13, "image_id": 1, "segmentation": {"counts": "x", "size": [9, 9]}, "iscrowd": 0},
            "not an object",
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    skips = SkipCounter()
    source = CocoSource(tmp_path / "ann.json", skips=skips)
    assert len(source) == 1
    assert skips.count() == 4
    assert source.load(0)[10, 10] == 1.0


def test_unreadable_coco_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ann.json").write_text("{ not json")
    with pytest.raises(ValueError, match="not a readable COCO instance JSON"):
        CocoSource(tmp_path / "ann.json")


def test_jsonl_malformed_lines_and_missing_masks_are_counted(tmp_path: Path) -> None:
    (tmp_path / "masks").mkdir()
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 255
    write_png(tmp_path / "masks" / "ok.png", mask)
    lines = [
        json.dumps({"image": "x.jpg", "mask": "masks/ok.png"}),
        "{broken",
        json.dumps({"image": "x.jpg", "conversations": []}),  # text-only sample: left out, not an error
        json.dumps({"image": "x.jpg", "mask": "masks/missing.png"}),
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(lines))
    skips = SkipCounter()
    source = JsonlSource(tmp_path / "data.jsonl", skips=skips)
    assert len(source) == 2 and skips.count() == 1
    mixture = MaskMixture([source], seed=3, skips=skips)
    mixture.batch(0, 8)
    assert skips.count() == 2
    assert skips.count(source.name) == 2


def test_all_corrupt_data_fails_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"junk")
    mixture = MaskMixture([PngDirSource(tmp_path)], seed=0)
    with pytest.raises(RuntimeError, match="no readable mask"):
        mixture.sample(0)
