"""RefCOCO, RefCOCO+, RefCOCOg and gRefCOCO as users keep them (the REFER / G_REFER data layout).

``<root>/<dataset>/refs(<split_by>).p`` (read with the plain-data unpickler) or its pickle-free twin
``refs(<split_by>).json``, beside ``<root>/<dataset>/instances.json``; or the TFDS bundle ``<root>/refcoco.json``
(every dataset in one file, each ref with its annotation embedded, images under ``coco_anns``). gRefCOCO:
``<root>/grefcoco/grefs(unc).json`` (or ``.p``) with ``<root>/grefcoco/instances.json``. Images:
``<root>/images/mscoco/images/train2014/<file_name>`` with the file name from ``instances.json`` (a ref's own
``file_name`` is not an image name).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from himtok_apps.eval.safe_pickle import load_plain_pickle
from himtok_apps.eval.samples import Benchmark, Ref, Sentence

SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd", "grefcoco": "unc"}
SPLITS = {
    "refcoco": ("val", "testA", "testB", "train"),
    "refcoco+": ("val", "testA", "testB", "train"),
    "refcocog": ("val", "test", "train"),
    "grefcoco": ("val", "testA", "testB", "train"),
}
IMAGE_DIR = Path("images") / "mscoco" / "images" / "train2014"
TFDS_BUNDLE = "refcoco.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None


def split_matches(wanted: str, split: str) -> bool:
    """REFER ``getRefIds``: testA/testB/testC select splits containing the letter, ``test`` every test split."""
    if wanted in ("testA", "testB", "testC"):
        return wanted[-1] in split
    if wanted == "test":
        return "test" in split
    return split == wanted


def sentences(ref: dict[str, Any]) -> tuple[Sentence, ...]:
    out = []
    for sentence in ref.get("sentences") or []:
        text = str(sentence.get("sent", sentence.get("raw", ""))).strip().lower()  # as LISA prompts
        out.append(Sentence(sentence.get("sent_id"), text, str(sentence.get("raw", text))))
    return tuple(out)


def _index(
    instances: dict[str, Any], path: Path
) -> tuple[dict[Any, dict[str, Any]], dict[Any, dict[str, Any]]]:
    try:
        images = {image["id"]: image for image in instances["images"]}
        annotations = {ann["id"]: ann for ann in instances["annotations"]}
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a COCO instances file (missing {error})") from None
    return images, annotations


def _image(
    images: dict[Any, dict[str, Any]], image_id: Any, image_dir: Path, source: Path
) -> tuple[Path, int, int]:
    image = images.get(image_id)
    if image is None:
        raise ValueError(f"{source}: image {image_id} is not in its instances file")
    return image_dir / image["file_name"], int(image["height"]), int(image["width"])


def _box(ann: dict[str, Any]) -> tuple[float, float, float, float] | None:
    box = ann.get("bbox")
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3])) if box and len(box) == 4 else None


def _refer_refs(
    refs: Iterable[dict[str, Any]],
    split: str,
    images: dict[Any, dict[str, Any]],
    annotations: dict[Any, dict[str, Any]] | None,
    image_dir: Path,
    source: Path,
) -> list[Ref]:
    out = []
    for ref in refs:
        if not split_matches(split, str(ref.get("split", ""))):
            continue
        ann = ref.get("ann") if annotations is None else annotations.get(ref["ann_id"])
        if ann is None:
            raise ValueError(
                f"{source}: ref {ref.get('ref_id')} names annotation {ref.get('ann_id')}, which is missing"
            )
        path, height, width = _image(images, ref["image_id"], image_dir, source)
        out.append(
            Ref(
                ref_id=ref["ref_id"],
                image_id=ref["image_id"],
                image_path=path,
                height=height,
                width=width,
                sentences=sentences(ref),
                segmentations=(ann["segmentation"],),
                box_xywh=_box(ann),
            )
        )
    return out


def load_refer(
    dataset: str, split: str, root: Path, split_by: str | None = None, image_dir: Path | None = None
) -> Benchmark:
    """RefCOCO / RefCOCO+ / RefCOCOg: one ``Ref`` per referred object of ``split``, in file order."""
    split_by = split_by or SPLIT_BY[dataset]
    image_dir = image_dir or root / IMAGE_DIR
    folder = root / dataset
    instances_path = folder / "instances.json"
    pickled, plain, bundle = (
        folder / f"refs({split_by}).p",
        folder / f"refs({split_by}).json",
        root / TFDS_BUNDLE,
    )
    if pickled.is_file() or plain.is_file():
        refs_path = pickled if pickled.is_file() else plain
        if not instances_path.is_file():
            raise ValueError(
                f"missing {instances_path} (REFER layout: <root>/{dataset}/instances.json beside {refs_path.name})"
            )
        refs = load_plain_pickle(refs_path) if refs_path.suffix == ".p" else read_json(refs_path)
        if not isinstance(refs, list):
            raise ValueError(f"{refs_path} should hold a list of refs, got {type(refs).__name__}")
        images, annotations = _index(read_json(instances_path), instances_path)
        found = _refer_refs(refs, split, images, annotations, image_dir, refs_path)
        files = {str(refs_path): sha256(refs_path), str(instances_path): sha256(instances_path)}
    elif bundle.is_file():
        data = read_json(bundle)
        if not isinstance(data, dict) or "ref" not in data or "coco_anns" not in data:
            raise ValueError(f"{bundle} is not a TFDS refcoco bundle (needs 'ref' and 'coco_anns')")
        chosen = [
            r for r in data["ref"] if r.get("dataset") == dataset and r.get("dataset_partition") == split_by
        ]
        images = {int(k): v["info"] for k, v in data["coco_anns"].items()}
        found = _refer_refs(chosen, split, images, None, image_dir, bundle)
        files = {str(bundle): sha256(bundle)}
    else:
        raise ValueError(
            f"no {dataset} refs under {root}: expected {pickled} (or {plain.name}) with {instances_path}, "
            f"or the TFDS bundle {bundle}"
        )
    if not found:
        raise ValueError(
            f"{dataset} ({split_by}) has no refs in split {split!r}; splits: {', '.join(SPLITS[dataset])}"
        )
    return Benchmark(dataset, split, found, files)


def load_grefcoco(split: str, root: Path, image_dir: Path | None = None) -> Benchmark:
    """gRefCOCO: the union of the non-crowd target instances of each ref; ``ann_id == [-1]`` is no target."""
    image_dir = image_dir or root / IMAGE_DIR
    folder = root / "grefcoco"
    instances_path = folder / "instances.json"
    plain, pickled = folder / "grefs(unc).json", folder / "grefs(unc).p"
    if pickled.is_file():
        refs_path = pickled  # G_REFER prefers the pickle when both exist
    elif plain.is_file():
        refs_path = plain
    else:
        raise ValueError(
            f"no gRefCOCO refs under {root}: expected {plain} (or {pickled.name}) with {instances_path}"
        )
    if not instances_path.is_file():
        raise ValueError(f"missing {instances_path} (gRefCOCO layout: <root>/grefcoco/instances.json)")
    refs = load_plain_pickle(refs_path) if refs_path.suffix == ".p" else read_json(refs_path)
    if not isinstance(refs, list):
        raise ValueError(f"{refs_path} should hold a list of refs, got {type(refs).__name__}")
    images, annotations = _index(read_json(instances_path), instances_path)
    found, notes = [], []
    for ref in refs:
        if not split_matches(split, str(ref.get("split", ""))):
            continue
        ann_ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
        no_target = ann_ids == [-1]
        if "no_target" in ref and bool(ref["no_target"]) != no_target:
            notes.append(
                f"ref {ref['ref_id']}: no_target={ref['no_target']} but ann_id={ann_ids}; ann_id decides"
            )
        segmentations = []
        for ann_id in [] if no_target else ann_ids:
            ann = annotations.get(ann_id)
            if ann is None:
                raise ValueError(
                    f"{refs_path}: ref {ref['ref_id']} names annotation {ann_id}, which is missing"
                )
            if not ann.get("iscrowd", 0):
                segmentations.append(ann["segmentation"])
        path, height, width = _image(images, ref["image_id"], image_dir, refs_path)
        found.append(
            Ref(
                ref_id=ref["ref_id"],
                image_id=ref["image_id"],
                image_path=path,
                height=height,
                width=width,
                sentences=sentences(ref),
                segmentations=tuple(segmentations),
                no_target=no_target,
            )
        )
    if not found:
        raise ValueError(f"grefcoco has no refs in split {split!r}; splits: {', '.join(SPLITS['grefcoco'])}")
    files = {str(refs_path): sha256(refs_path), str(instances_path): sha256(instances_path)}
    return Benchmark("grefcoco", split, found, files, notes)
