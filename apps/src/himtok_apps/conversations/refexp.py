"""``refexp:FILE.jsonl``: referring expressions tied to COCO instance annotations, as referring segmentation.

Each line holds ``image`` (relative to the JSONL's folder), ``split``, ``ann_id``, ``expression`` and optionally
``bbox`` ([x1, y1, x2, y2] pixels); the mask is annotation ``ann_id`` of ``ROOT/instances_<split>.json`` (the
format of ``../shared/data/refexp``). ``ROOT`` defaults to the folder above each image's folder
(``coco-subset/images/x.jpg`` -> ``coco-subset``); ``?root=DIR`` or ``refexp:FILE,DIR`` sets it, and images
not found beside the JSONL are then looked for in ``DIR/images``. Lines that cannot be tied to an annotation
are skipped and counted when the source is built; unreadable images and size mismatches when drawn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from himtok_prompt_templates import Sample
from pycocotools import mask as mask_utils

from himtok_apps.conversations.images import load_rgb
from himtok_apps.conversations.render import MASK, box_of, build_sample, check_tasks, draw_task, phrasing_seed
from himtok_apps.conversations.sample import ConversationSample, SampleError
from himtok_apps.conversations.source import ConversationSource
from himtok_apps.conversations.spec import TASK_DEFAULTS
from himtok_apps.data.coco import to_rle
from himtok_apps.data.errors import MaskReadError, SkipCounter


@dataclass(frozen=True)
class _Item:
    line: int
    image: Path
    size: tuple[int, int]  # (height, width) of the annotation's image record
    rle: dict[str, Any]
    ann_id: int
    expression: str
    bbox: tuple[float, float, float, float] | None


class _Instances:
    """COCO instance files, each read once: annotation id -> (annotation, image record)."""

    def __init__(self) -> None:
        self.files: dict[Path, tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]] | None] = {}

    def lookup(self, path: Path, ann_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        if path not in self.files:
            try:
                data = json.loads(path.read_text())
                self.files[path] = (
                    {int(a["id"]): a for a in data["annotations"]},
                    {int(i["id"]): i for i in data["images"]},
                )
            except (OSError, ValueError, KeyError, TypeError):
                self.files[path] = None
        loaded = self.files[path]
        if loaded is None:
            raise MaskReadError(f"missing instances: {path} is not a readable COCO instance JSON")
        annotations, images = loaded
        if ann_id not in annotations:
            raise MaskReadError(f"unknown annotation: {ann_id} is not in {path.name}")
        annotation = annotations[ann_id]
        image = images.get(int(annotation["image_id"]))
        if image is None:
            raise MaskReadError(f"unknown image: annotation {ann_id} names a missing image record")
        return annotation, image


class RefexpSource(ConversationSource):
    def __init__(
        self,
        file: Path,
        root: Path | None = None,
        *,
        tasks: Mapping[str, float] | None = None,
        seed: int = 0,
        style: str = "varied",
        limit: int | None = None,
        skips: SkipCounter | None = None,
        name: str | None = None,
    ) -> None:
        self.file = Path(file)
        self.name = name or f"refexp:{self.file.name}"
        self.tasks = check_tasks(tasks or {"segment": 1.0}, TASK_DEFAULTS["refexp"], self.name)
        self.seed, self.style = seed, style
        skips = skips if skips is not None else SkipCounter()
        try:
            lines = self.file.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"{self.file}: unreadable JSONL ({error})") from None
        instances = _Instances()
        self.items: list[_Item] = []
        for number, line in enumerate(lines, start=1):
            if limit is not None and len(self.items) >= limit:
                break
            if not line.strip():
                continue
            try:
                self.items.append(self._item(number, line, root, instances))
            except MaskReadError as error:
                skips.add(self.name, f"line {number}", str(error))

    def _item(self, number: int, line: str, root: Path | None, instances: _Instances) -> _Item:
        try:
            record = json.loads(line)
        except ValueError as error:
            raise MaskReadError(f"malformed JSON: {error}") from None
        try:
            image = self.file.parent / str(record["image"])
            split, ann_id = str(record.get("split", "train")), int(record["ann_id"])
            expression = record["expression"]
            bbox = record.get("bbox")
        except (KeyError, TypeError, ValueError) as error:
            raise MaskReadError(f"bad record: {error!r}") from None
        if not isinstance(expression, str) or not expression.strip():
            raise MaskReadError("bad record: no expression")
        if root is not None and not image.is_file():
            image = root / "images" / image.name
        folder = root if root is not None else image.parent.parent
        annotation, image_record = instances.lookup(folder / f"instances_{split}.json", ann_id)
        height, width = int(image_record["height"]), int(image_record["width"])
        try:
            rle = to_rle(annotation["segmentation"], height, width)
        except (KeyError, TypeError, ValueError) as error:
            raise MaskReadError(f"bad annotation: {error!r}") from None
        box = None
        if isinstance(bbox, list) and len(bbox) == 4:
            try:
                box = (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))
            except (TypeError, ValueError):
                raise MaskReadError(f"bad record: bbox {bbox!r}") from None
        return _Item(number, image, (height, width), rle, ann_id, expression, box)

    def __len__(self) -> int:
        return len(self.items)

    def item_key(self, index: int) -> str:
        return f"line {self.items[index].line}"

    def sample(self, index: int) -> ConversationSample:
        item = self.items[index]
        rng = np.random.default_rng([self.seed, index])
        task = draw_task(rng, self.tasks)[0]
        image = load_rgb(item.image)
        if (image.height, image.width) != item.size:
            raise SampleError(
                f"mask size: annotation is {item.size[1]}x{item.size[0]}, image {image.width}x{image.height}"
            )
        mask = mask_utils.decode(item.rle).astype(bool)
        box = item.bbox if item.bbox is not None else box_of(mask)
        height, width = item.size
        fields = Sample(
            expression=item.expression, tokens=MASK, box=box, width=width, height=height, answer=True
        )
        masks = [] if task == "box" else [mask]
        meta = {"expression": item.expression, "ann_id": item.ann_id, "box": box, "absent": False}
        return build_sample(
            task,
            fields,
            masks,
            image=image,
            source=self.name,
            key=self.item_key(index),
            seed=phrasing_seed(rng),
            style=self.style,
            meta=meta,
        )
