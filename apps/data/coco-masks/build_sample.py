"""Rebuild this sample from ../shared/data/coco-subset: ``uv run python apps/data/coco-masks/build_sample.py``.

Keeps the annotations whose mask covers at least 1% of its image, drops the image files and every field the
mask decoder does not need, and rounds coordinates to 0.1 px.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPLIT_RULE = {"train": "!= 0", "val": "== 0"}


def build(shared: Path, split: str) -> dict:
    data = json.loads((shared / f"instances_{split}.json").read_text())
    images = {image["id"]: image for image in data["images"]}
    annotations = []
    for ann in data["annotations"]:
        image = images[ann["image_id"]]
        if ann["area"] < 0.01 * image["width"] * image["height"]:
            continue
        segmentation = ann["segmentation"]
        if isinstance(segmentation, list):
            segmentation = [[round(v, 1) for v in polygon] for polygon in segmentation]
        annotations.append(
            {
                "id": ann["id"],
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "segmentation": segmentation,
                "area": ann["area"],
                "bbox": [round(v, 1) for v in ann["bbox"]],
                "iscrowd": ann["iscrowd"],
            }
        )
    used = sorted({ann["image_id"] for ann in annotations})
    return {
        "info": {
            "description": f"Annotation-only sample of the himtok COCO-2017 subset ({split} split: image id % 10 "
            f"{SPLIT_RULE[split]}), masks covering at least 1% of their image. COCO annotations, CC BY 4.0.",
            "source": f"../shared/data/coco-subset/instances_{split}.json",
        },
        "images": [{k: images[i][k] for k in ("id", "file_name", "width", "height")} for i in used],
        "annotations": annotations,
        "categories": [{k: c[k] for k in ("id", "name", "supercategory")} for c in data["categories"]],
    }


if __name__ == "__main__":
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[3] / "shared" / "data" / "coco-subset"
    for split in ("train", "val"):
        sample = build(shared, split)
        (HERE / f"instances_{split}.json").write_text(json.dumps(sample, separators=(",", ":")))
        print(split, len(sample["images"]), "images", len(sample["annotations"]), "masks")
