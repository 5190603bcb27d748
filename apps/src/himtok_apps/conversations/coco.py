"""``coco:instances.json``: conversations for every task family, generated from COCO instance annotations.

Category names are the expressions. Per draw the task is chosen from ``(seed, index)`` by weight (see
``TASK_DEFAULTS["coco"]``); a task the image cannot support (no category with a single instance for
``segment``, fewer than two categories for ``multi_target``) falls back to the next task by weight.

- ``segment``, ``segment_then_box`` (REC: box after the mask), ``box``: an object whose category has one
  instance in the image;
- ``exists`` (generalized RES, open vocabulary: one class, existence first): a present category with the
  union of its instances, or (share ``absent``) a category not in the image, answered "No" with no mask;
  LVIS-style ``neg_category_ids``/``not_exhaustive_category_ids`` on the image record are honoured;
- ``box_to_mask``, ``points_to_mask``, ``box_points_to_mask``: any object, prompted by its box and/or a point
  inside it;
- ``mask_perception`` (mask to text): the mask in the human turn and lettered category options;
- ``multi_target``: two or three present categories, one mask (the union of its instances) each.

Objects smaller than ``min_area`` of the image are never targets but still count as present. The index runs
over ``images x variants``; image ``index % images`` gives each variant its own task and target.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from himtok_prompt_templates import Sample, Target
from pycocotools import mask as mask_utils

from himtok_apps.conversations.images import load_rgb
from himtok_apps.conversations.render import (
    MASK,
    box_of,
    build_sample,
    check_tasks,
    draw_task,
    interior_point,
    phrasing_seed,
)
from himtok_apps.conversations.sample import ConversationSample, SampleError
from himtok_apps.conversations.source import ConversationSource
from himtok_apps.conversations.spec import TASK_DEFAULTS
from himtok_apps.data.coco import to_rle
from himtok_apps.data.errors import MaskReadError, SkipCounter


@dataclass(frozen=True)
class _Object:
    ann_id: int
    category: int
    rle: dict[str, Any]
    usable: bool  # may be a target: not a crowd, at least min_area


@dataclass(frozen=True)
class _Image:
    id: int
    path: Path
    size: tuple[int, int]  # (height, width)
    objects: tuple[_Object, ...]
    negatives: tuple[int, ...] | None  # categories verified absent (LVIS); None: annotation is exhaustive
    not_exhaustive: tuple[int, ...]


# What a task builder returns: the task, its fields, the masks in placeholder order, and metadata.
_Built = tuple[str, Sample, list[np.ndarray], dict[str, object]]


class _Draw:
    """One draw's view of an image: its objects, decoded masks (cached) and the random generator."""

    def __init__(
        self, image: _Image, names: Mapping[int, str], rng: np.random.Generator, absent: float
    ) -> None:
        self.image, self.names, self.rng, self.absent = image, names, rng, absent
        self.cache: dict[int, np.ndarray] = {}
        counts: dict[int, int] = {}
        for obj in image.objects:
            counts[obj.category] = counts.get(obj.category, 0) + 1
        self.present = set(counts)
        self.usable = [o for o in image.objects if o.usable]
        self.unique = [o for o in self.usable if counts[o.category] == 1]
        self.categories = sorted({o.category for o in self.usable})

    def mask(self, obj: _Object) -> np.ndarray:
        if obj.ann_id not in self.cache:
            self.cache[obj.ann_id] = mask_utils.decode(obj.rle).astype(bool)
        return self.cache[obj.ann_id]

    def union(self, category: int) -> np.ndarray:
        masks = [self.mask(o) for o in self.image.objects if o.category == category]
        return np.logical_or.reduce(masks)

    def pick(self, items: list[Any]) -> Any:
        return items[int(self.rng.integers(len(items)))]

    def absent_categories(self) -> list[int]:
        if self.image.negatives is not None:
            return sorted(set(self.image.negatives) - self.present)
        skip = self.present | set(self.image.not_exhaustive)
        return [c for c in self.names if c not in skip]

    @property
    def width_height(self) -> tuple[int, int]:
        return self.image.size[1], self.image.size[0]


def _referring(task: str) -> Callable[[_Draw], _Built | None]:
    def build(d: _Draw) -> _Built | None:
        if not d.unique:
            return None
        obj = d.pick(d.unique)
        mask = d.mask(obj)
        box = box_of(mask)
        name = d.names[obj.category]
        width, height = d.width_height
        fields = Sample(expression=name, tokens=MASK, box=box, width=width, height=height)
        meta = {"expression": name, "ann_ids": [obj.ann_id], "box": box, "absent": False}
        return task, fields, ([] if task == "box" else [mask]), meta

    return build


def _exists(d: _Draw) -> _Built | None:
    absent = d.absent_categories()
    if absent and d.rng.random() < d.absent:
        name = d.names[d.pick(absent)]
        return "exists", Sample(expression=name, answer=False), [], {"expression": name, "absent": True}
    if not d.categories:
        return None
    category = d.pick(d.categories)
    name = d.names[category]
    ids = [o.ann_id for o in d.image.objects if o.category == category]
    meta = {"expression": name, "ann_ids": ids, "absent": False}
    return "exists", Sample(expression=name, tokens=MASK, answer=True), [d.union(category)], meta


def _prompted(task: str) -> Callable[[_Draw], _Built | None]:
    def build(d: _Draw) -> _Built | None:
        if not d.usable:
            return None
        obj = d.pick(d.usable)
        mask = d.mask(obj)
        box = box_of(mask)
        point = interior_point(mask, d.rng)
        width, height = d.width_height
        fields = Sample(tokens=MASK, box=box, points=[point], width=width, height=height)
        meta = {"expression": d.names[obj.category], "ann_ids": [obj.ann_id], "box": box, "point": point}
        return task, fields, [mask], {**meta, "absent": False}

    return build


def _mask_perception(d: _Draw) -> _Built | None:
    if not d.usable:
        return None
    obj = d.pick(d.usable)
    others = [d.names[c] for c in d.absent_categories() if d.names[c] != d.names[obj.category]]
    if not others:
        return None
    count = min(len(others), int(d.rng.integers(1, 4)))
    picked = d.rng.choice(len(others), size=count, replace=False)
    options = [d.names[obj.category], *(others[int(i)] for i in picked)]
    order = d.rng.permutation(len(options))
    options = [options[int(i)] for i in order]
    answer = options.index(d.names[obj.category])
    fields = Sample(tokens=MASK, options=options, answer=answer)
    meta = {"expression": d.names[obj.category], "ann_ids": [obj.ann_id], "options": options, "absent": False}
    return "mask_perception", fields, [d.mask(obj)], meta


def _multi_target(d: _Draw) -> _Built | None:
    if len(d.categories) < 2:
        return None
    count = int(d.rng.integers(2, min(3, len(d.categories)) + 1))
    chosen = [d.categories[int(i)] for i in d.rng.choice(len(d.categories), size=count, replace=False)]
    names = [d.names[c] for c in chosen]
    fields = Sample(targets=[Target(name, MASK) for name in names])
    return "multi_target", fields, [d.union(c) for c in chosen], {"expressions": names, "absent": False}


BUILDERS: Mapping[str, Callable[[_Draw], _Built | None]] = {
    "segment": _referring("segment"),
    "segment_then_box": _referring("segment_then_box"),
    "box": _referring("box"),
    "exists": _exists,
    "box_to_mask": _prompted("box_to_mask"),
    "points_to_mask": _prompted("points_to_mask"),
    "box_points_to_mask": _prompted("box_points_to_mask"),
    "mask_perception": _mask_perception,
    "multi_target": _multi_target,
}


def _ids(values: object) -> tuple[int, ...]:
    return tuple(int(v) for v in values) if isinstance(values, list) else ()


class CocoConversationSource(ConversationSource):
    def __init__(
        self,
        annotations: Path,
        images_dir: Path | None = None,
        *,
        tasks: Mapping[str, float] | None = None,
        seed: int = 0,
        style: str = "varied",
        min_area: float = 0.0,
        absent: float = 0.3,
        variants: int = 8,
        limit: int | None = None,
        skips: SkipCounter | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or f"coco:{Path(annotations).name}"
        self.tasks = check_tasks(tasks or TASK_DEFAULTS["coco"], BUILDERS, self.name)
        self.seed, self.style, self.absent, self.variants = seed, style, absent, variants
        skips = skips if skips is not None else SkipCounter()
        try:
            data = json.loads(Path(annotations).read_text())
            records, image_records = data["annotations"], data["images"]
            self.names = {int(c["id"]): str(c["name"]).replace("_", " ") for c in data["categories"]}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{annotations}: not a readable COCO instance JSON ({error})") from None
        if images_dir is None:
            beside = Path(annotations).parent / "images"
            images_dir = beside if beside.is_dir() else Path(annotations).parent
        objects: dict[int, list[_Object]] = {}
        sizes: dict[int, tuple[int, int]] = {}
        for image in image_records:
            try:
                sizes[int(image["id"])] = (int(image["height"]), int(image["width"]))
            except (KeyError, TypeError, ValueError):
                skips.add(
                    self.name, f"image {image.get('id', '?')}", "bad image record: no id, width or height"
                )
        for record in records:
            ident = record.get("id", "?") if isinstance(record, dict) else "?"
            try:
                ann_id, image_id = int(record["id"]), int(record["image_id"])
                size = sizes[image_id]
                rle = to_rle(record["segmentation"], *size)
                area = float(mask_utils.area(rle))
                category = int(record["category_id"])
                if category not in self.names:
                    raise MaskReadError(f"unknown category: {category}")
            except (MaskReadError, KeyError, TypeError, ValueError, OverflowError) as error:
                skips.add(self.name, f"annotation {ident}", str(error) or type(error).__name__)
                continue
            usable = not record.get("iscrowd", 0) and area > 0 and area >= min_area * size[0] * size[1]
            objects.setdefault(image_id, []).append(_Object(ann_id, category, rle, usable))
        self.images: list[_Image] = []
        for image in image_records:
            found = objects.get(int(image.get("id", -1)), [])
            if not any(o.usable for o in found):
                continue
            if limit is not None and len(self.images) >= limit:
                break
            negatives = _ids(image["neg_category_ids"]) if "neg_category_ids" in image else None
            path = images_dir / str(image.get("file_name", ""))
            self.images.append(
                _Image(
                    int(image["id"]),
                    path,
                    sizes[int(image["id"])],
                    tuple(found),
                    negatives,
                    _ids(image.get("not_exhaustive_category_ids")),
                )
            )

        if self.images and not any(record.path.is_file() for record in self.images[:20]):
            raise ValueError(
                f"{annotations}: no image found in {images_dir} (give IMAGES_DIR: coco:JSON,IMAGES_DIR)"
            )

    def __len__(self) -> int:
        return len(self.images) * self.variants

    def item_key(self, index: int) -> str:
        return f"image {self.images[index % len(self.images)].path.name}"

    def sample(self, index: int) -> ConversationSample:
        record = self.images[index % len(self.images)]
        image = load_rgb(record.path)
        if (image.height, image.width) != record.size:
            raise SampleError(
                f"mask size: annotations are for {record.size[1]}x{record.size[0]}, "
                f"the image is {image.width}x{image.height}"
            )
        rng = np.random.default_rng([self.seed, index])
        draw = _Draw(record, self.names, rng, self.absent)
        for task in draw_task(rng, self.tasks):
            built = BUILDERS[task](draw)
            if built is not None:
                break
        else:
            raise SampleError("no task: no enabled task fits this image")
        name, fields, masks, meta = built
        meta = {**meta, "image_id": record.id}
        return build_sample(
            name,
            fields,
            masks,
            image=image,
            source=self.name,
            key=f"{self.item_key(index)} #{index}",
            seed=phrasing_seed(rng),
            style=self.style,
            meta=meta,
        )
