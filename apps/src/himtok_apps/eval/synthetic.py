"""Tiny synthetic benchmark folders in the real layouts (REFER, gRefCOCO, ReasonSeg), for the tests and the
README example: ``uv run python -m himtok_apps.eval.synthetic DIR`` writes a REFER-layout RefCOCO with two
images and ``DIR/predictions.jsonl``, perfect predictions of its val split by the standard protocol."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

IMAGE_DIR = Path("images/mscoco/images/train2014")
# (id, width, height)
IMAGES = [(1, 40, 30), (2, 32, 24)]


def _rle_text(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def rectangle(height: int, width: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def instances() -> dict[str, Any]:
    """Two images; a square, two overlapping polygons (+ a 2-point one to drop), an RLE, a crowd, a polygon."""
    images = [
        {"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": w, "height": h} for i, w, h in IMAGES
    ]
    annotations = [
        {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [5, 5, 10, 10],
         "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]]},
        {"id": 12, "image_id": 1, "category_id": 2, "iscrowd": 0, "bbox": [20, 5, 15, 15],
         "segmentation": [[20, 5, 30, 5, 30, 15, 20, 15], [25, 10, 35, 10, 35, 20, 25, 20], [0, 0, 1, 1]]},
        {"id": 21, "image_id": 2, "category_id": 1, "iscrowd": 0, "bbox": [2, 3, 8, 6],
         "segmentation": _rle_text(rectangle(24, 32, 2, 3, 10, 9))},
        {"id": 22, "image_id": 2, "category_id": 3, "iscrowd": 0, "bbox": [12, 4, 14, 16],
         "segmentation": [[12, 4, 26, 4, 26, 20, 12, 20]]},
        {"id": 23, "image_id": 2, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 32, 2],
         "segmentation": _rle_text(rectangle(24, 32, 0, 0, 32, 2))},
    ]  # fmt: skip
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}


def _sentence(sent_id: int, raw: str) -> dict[str, Any]:
    return {"sent_id": sent_id, "raw": raw, "sent": raw.lower(), "tokens": raw.lower().split()}


def refcoco_refs() -> list[dict[str, Any]]:
    """val: refs 100 (2 sentences) and 101 (a duplicate sentence); testA 102; testB 103; train 104."""

    def ref(
        ref_id: int, ann_id: int, image_id: int, split: str, sentences: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "ref_id": ref_id,
            "ann_id": ann_id,
            "image_id": image_id,
            "category_id": 1,
            "split": split,
            "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",  # not an image file name
            "sent_ids": [s["sent_id"] for s in sentences],
            "sentences": sentences,
        }

    return [
        ref(100, 11, 1, "val", [_sentence(1000, "Left square"), _sentence(1001, "the small square")]),
        ref(101, 12, 1, "val", [_sentence(1002, "right shape"), _sentence(1003, "right shape")]),
        ref(102, 21, 2, "testA", [_sentence(1004, "person on the left")]),
        ref(103, 22, 2, "testB", [_sentence(1005, "the tall box")]),
        ref(104, 22, 2, "train", [_sentence(1006, "training only")]),
    ]


def grefcoco_refs() -> list[dict[str, Any]]:
    """val: 200 two targets (union), 201 no target (2 sentences), 202 a target plus a crowd one (dropped)."""
    return [
        {"ref_id": 200, "ann_id": [11, 12], "image_id": 1, "split": "val", "category_id": [1, 2],
         "sentences": [_sentence(2000, "both shapes")], "no_target": False},
        {"ref_id": 201, "ann_id": [-1], "image_id": 1, "split": "val", "category_id": [],
         "sentences": [_sentence(2001, "a dog"), _sentence(2002, "the cat")], "no_target": True},
        {"ref_id": 202, "ann_id": [21, 23], "image_id": 2, "split": "val", "category_id": [1],
         "sentences": [_sentence(2003, "the box")], "no_target": False},
    ]  # fmt: skip


def write_images(root: Path) -> None:
    folder = root / IMAGE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, w, h in IMAGES:
        pixels = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"COCO_train2014_{i:012d}.jpg")


def write_refer(root: Path, dataset: str = "refcoco", fmt: str = "pickle") -> Path:
    """``<root>/<dataset>/refs(unc|umd).p`` (plain ``pickle.dumps``), ``.json``, or the TFDS bundle."""
    split_by = "umd" if dataset == "refcocog" else "unc"
    write_images(root)
    refs = refcoco_refs()
    if fmt == "tfds":
        anns = {a["id"]: a for a in instances()["annotations"]}
        images = {i["id"]: i for i in instances()["images"]}
        bundle = [
            {**r, "ann": anns[r["ann_id"]], "dataset": dataset, "dataset_partition": split_by} for r in refs
        ]
        coco = {str(i): {"info": images[i], "anns": []} for i in images}
        (root / "refcoco.json").write_text(json.dumps({"ref": bundle, "coco_anns": coco}))
        return root
    folder = root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "instances.json").write_text(json.dumps(instances()))
    if fmt == "pickle":
        (folder / f"refs({split_by}).p").write_bytes(pickle.dumps(refs))
    else:
        (folder / f"refs({split_by}).json").write_text(json.dumps(refs))
    return root


def write_grefcoco(root: Path) -> Path:
    write_images(root)
    folder = root / "grefcoco"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "instances.json").write_text(json.dumps(instances()))
    (folder / "grefs(unc).json").write_text(json.dumps(grefcoco_refs()))
    return root


def write_reasonseg(root: Path, split: str = "val") -> Path:
    """a (short query): a target square and an ignore strip; b (long query): a big polygon, a smaller
    'ignore' polygon inside it (drawn over it), a 'flag' shape (skipped); c: EXIF-rotated (orientation 6)."""
    folder = root / "reason_seg" / "ReasonSeg" / split
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    shapes = {
        "a": (30, 20, False, [
            {"label": "target", "points": [[2, 2], [9, 2], [9, 9], [2, 9]]},
            {"label": "ignore", "points": [[15.7, 0], [19.2, 0], [19.2, 19], [15.7, 19]]},
        ]),
        "b": (24, 24, True, [
            {"label": "target", "points": [[2, 2], [20, 2], [20, 20], [2, 20]]},
            {"label": "Ignore-part", "points": [[8, 8], [12, 8], [12, 12], [8, 12]]},
            {"label": "flag", "points": [[0, 0], [23, 0], [23, 23], [0, 23]]},
        ]),
        "c": (20, 12, False, [{"label": "target", "points": [[1, 1], [15, 1], [15, 5], [1, 5]]}]),
    }  # fmt: skip
    texts = {
        "a": ["the red thing", "another phrasing"],
        "b": ["Something you sit on while reading."],
        "c": ["pole"],
    }
    for stem, (w, h, long_query, polys) in shapes.items():
        pixels = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if stem == "c":  # stored sideways (w x h swapped) with an EXIF rotation: upright it is w x h
            stored = image.transpose(Image.Transpose.ROTATE_90)
            exif = Image.Exif()
            exif[0x0112] = 6
            stored.save(folder / f"{stem}.jpg", exif=exif)
        else:
            image.save(folder / f"{stem}.jpg")
        annotation = {"text": texts[stem], "is_sentence": long_query, "shapes": polys}
        (folder / f"{stem}.json").write_text(json.dumps(annotation))
    return root


def write_predictions(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def oracle_predictions(root: Path, dataset: str = "refcoco", split: str = "val") -> list[dict[str, Any]]:
    """Predictions equal to the ground truth of every standard-protocol sample of a written dataset."""
    from himtok_apps.eval.loaders import load_benchmark
    from himtok_apps.eval.masks import ground_truth, to_json
    from himtok_apps.eval.protocols import STANDARD, build_samples

    bench = load_benchmark(dataset, split, root)
    return [
        {"sample_id": s.sample_id, "mask": to_json(ground_truth(s.ref).fg)}
        for s in build_samples(bench, STANDARD)
    ]


def main(argv: list[str] | None = None) -> int:
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m himtok_apps.eval.synthetic DIR", file=sys.stderr)
        return 2
    root = Path(args[0])
    write_refer(root, "refcoco", "pickle")
    write_predictions(root / "predictions.jsonl", oracle_predictions(root))
    print(f"wrote a 2-image REFER-layout refcoco and {root / 'predictions.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
