"""Training pairs for the refiner: an image and one ground-truth mask of it.

``shapes:[?seed=N&size=PX]`` (the default) draws the procedural scenes of `himtok_apps.data.shapes`, one shape
per item; ``coco:INSTANCES_JSON,IMAGES_DIR[?min_area=F&limit=N&crowd=1]`` reads COCO instance annotations and
their images. Held-out items come from other scenes (a different seed) or from the images whose id ends in 0.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from himtok_apps.data.coco import to_rle
from himtok_apps.data.errors import MaskReadError, SkipCounter
from himtok_apps.data.shapes import SceneConfig, make_scene
from himtok_apps.data.spec import DataSpec, parse_data_spec

KINDS = ("shapes", "coco")
SPLITS = ("train", "val", "all")
SHAPES_PER_SCENE = 3
VAL_SEED_OFFSET = 1_000_003  # held-out shapes scenes: another set of scenes, never drawn in training
REDRAW_STRIDE = 1_000_003  # an unreadable item n is replaced by item n + k * stride (k = 1, 2, ...)
MAX_REDRAWS = 32


@dataclass(frozen=True)
class RefineSample:
    key: str
    image: np.ndarray  # uint8 [H, W, 3]
    mask: np.ndarray  # bool [H, W]


class SampleSource(ABC):
    name: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def item(self, index: int) -> RefineSample:
        """Item `index` (0 <= index < len); `MaskReadError` when it cannot be read."""


class ShapesSamples(SampleSource):
    """Shape ``i % 3`` of scene ``i // 3`` (the next shape when the scene has fewer) with its scene."""

    def __init__(self, seed: int = 0, size: int = 112, items: int = 200_000, name: str = "shapes:") -> None:
        self.seed, self.config, self.items, self.name = seed, SceneConfig(size=size), items, name

    def __len__(self) -> int:
        return self.items

    def item(self, index: int) -> RefineSample:
        scene = make_scene(self.seed, index // SHAPES_PER_SCENE, self.config)
        shape = scene.shapes[(index % SHAPES_PER_SCENE) % len(scene.shapes)]
        return RefineSample(f"scene {index // SHAPES_PER_SCENE} {shape.name}", scene.image, shape.mask)


class CocoSamples(SampleSource):
    """COCO instance masks with their images; annotations whose image is missing are skipped and counted."""

    def __init__(
        self,
        annotations: Path,
        images_dir: Path,
        *,
        split: str = "all",
        min_area: float = 0.0,
        crowd: bool = False,
        limit: int | None = None,
        skips: SkipCounter | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or f"coco:{annotations.name}"
        skips = skips if skips is not None else SkipCounter()
        try:
            data = json.loads(Path(annotations).read_text())
            images = {int(r["id"]): r for r in data["images"]}
            records = data["annotations"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{annotations}: not a readable COCO instance JSON ({error})") from None
        self.items: list[tuple[str, Path, dict[str, Any]]] = []
        for record in records:
            if limit is not None and len(self.items) >= limit:
                break
            ident = f"annotation {record.get('id', '?')}" if isinstance(record, dict) else "annotation ?"
            try:
                if not isinstance(record, dict):
                    raise MaskReadError("annotation is not an object")
                if record.get("iscrowd", 0) and not crowd:
                    continue
                image_id = int(record["image_id"])
                if split != "all" and (image_id % 10 == 0) != (split == "val"):
                    continue
                image = images.get(image_id)
                if image is None:
                    raise MaskReadError(f"unknown image_id {image_id}")
                height, width = int(image["height"]), int(image["width"])
                rle = to_rle(record["segmentation"], height, width)
                area = float(mask_utils.area(rle))
                path = images_dir / str(image["file_name"])
                if not path.is_file():
                    raise MaskReadError(f"image {path.name} not in {images_dir}")
            except (MaskReadError, KeyError, TypeError, ValueError, OverflowError) as error:
                skips.add(self.name, ident, str(error) or type(error).__name__)
                continue
            if area <= 0 or area < min_area * height * width:
                continue
            self.items.append((ident, path, rle))

    def __len__(self) -> int:
        return len(self.items)

    def item(self, index: int) -> RefineSample:
        ident, path, rle = self.items[index]
        try:
            with Image.open(path) as opened:
                image = np.asarray(opened.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise MaskReadError(f"unreadable image {path.name}: {error}") from None
        mask = mask_utils.decode(rle).astype(bool)
        if image.shape[:2] != mask.shape:
            raise MaskReadError(f"image {path.name} is {image.shape[:2]}, its annotation {mask.shape}")
        return RefineSample(ident, image, mask)


def parse_source_spec(text: str) -> DataSpec:
    """A ``shapes:`` or ``coco:JSON,IMAGES_DIR`` spec, checked; ``ValueError`` (one line) otherwise."""
    spec = parse_data_spec(text)
    if spec.kind not in KINDS:
        raise ValueError(
            f"--data {text!r}: the refiner trains on images: shapes: or coco:INSTANCES_JSON,IMAGES_DIR"
        )
    if spec.kind == "coco" and (spec.extra is None or not spec.extra.is_dir()):
        raise ValueError(f"--data {text!r}: coco needs its images: coco:INSTANCES_JSON,IMAGES_DIR")
    unsupported = sorted(set(spec.options) - {"seed", "size", "items", "min_area", "limit", "crowd"})
    if unsupported:
        raise ValueError(
            f"--data {text!r}: option {', '.join(unsupported)} does not apply to refiner training"
        )
    return spec


def build_samples(text: str, split: str, skips: SkipCounter | None = None) -> SampleSource:
    """The source a spec names, restricted to a split (train, val or all)."""
    spec = parse_source_spec(text)
    source: SampleSource
    if spec.kind == "shapes":
        seed = int(spec.options.get("seed", 0))  # type: ignore[call-overload]
        source = ShapesSamples(
            seed + (VAL_SEED_OFFSET if split == "val" else 0),
            size=int(spec.options.get("size", 112)),  # type: ignore[call-overload]
            items=int(spec.options.get("items", 200_000)),  # type: ignore[call-overload]
            name=text,
        )
    else:
        assert spec.extra is not None
        source = CocoSamples(
            spec.path,
            spec.extra,
            split=split,
            min_area=spec.min_area,
            crowd=bool(spec.options.get("crowd", 0)),
            limit=spec.limit,
            skips=skips,
            name=text,
        )
    if len(source) == 0:
        raise ValueError(f"--data {text!r}: no usable {split} mask with its image found")
    return source


class SampleStream:
    """Item ``n`` of an endless shuffled stream over a source (a new permutation per pass); unreadable items
    are counted and replaced deterministically, so item ``n`` is the same in a resumed run."""

    def __init__(self, source: SampleSource, seed: int, skips: SkipCounter) -> None:
        self.source, self.seed, self.skips = source, seed, skips
        self._order: tuple[int, np.ndarray] | None = None

    def _index(self, n: int) -> int:
        size = len(self.source)
        epoch = n // size
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(size))
        return int(self._order[1][n % size])

    def sample(self, n: int) -> RefineSample:
        for k in range(MAX_REDRAWS):
            index = self._index(n + k * REDRAW_STRIDE)
            try:
                return self.source.item(index)
            except MaskReadError as error:
                self.skips.add(self.source.name, f"item {index}", f"unusable: {error}")
        raise ValueError(f"no usable sample after {MAX_REDRAWS} draws for sample {n}: check --data")


def held_out(source: SampleSource, count: int, seed: int, skips: SkipCounter) -> list[RefineSample]:
    """`count` readable items spread over the source (a seeded permutation), the same in every run."""
    order = np.random.default_rng([seed, 7]).permutation(len(source))
    samples: list[RefineSample] = []
    for index in order:
        if len(samples) == count:
            break
        try:
            samples.append(source.item(int(index)))
        except MaskReadError as error:
            skips.add(source.name, f"item {index}", f"unusable: {error}")
    if not samples:
        raise ValueError(f"--val-data {source.name!r}: no readable held-out sample")
    return samples
