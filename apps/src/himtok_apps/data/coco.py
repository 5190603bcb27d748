"""COCO instance annotations (polygons, uncompressed and compressed RLE) as masks, via pycocotools."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from himtok_apps.data.errors import MaskReadError, SkipCounter
from himtok_apps.data.source import MaskSource

# pycocotools' decode trips a NumPy 2 copy-keyword deprecation on every call; it is harmless and floods logs.
warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)


def _image_size(record: dict[str, Any], images_dir: Path | None) -> tuple[int, int]:
    height, width = record.get("height"), record.get("width")
    if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
        return height, width
    if images_dir is None:
        raise MaskReadError(f"image {record.get('id')} has no width/height and no IMAGES_DIR was given")
    path = images_dir / str(record.get("file_name", ""))
    try:
        with Image.open(path) as image:  # reads the header only
            return image.height, image.width
    except OSError as error:
        raise MaskReadError(f"image size of {path.name} unreadable: {error}") from None


def to_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """A COCO ``segmentation`` (polygons, uncompressed or compressed RLE) as compressed RLE; MaskReadError if bad."""
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
        if not polygons:
            raise MaskReadError("no polygon with at least 3 points")
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segmentation, dict) and "counts" in segmentation:
        if isinstance(segmentation["counts"], list):  # uncompressed RLE
            return mask_utils.frPyObjects(segmentation, height, width)
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        if list(rle.get("size", [])) != [height, width]:
            raise MaskReadError(f"RLE size {rle.get('size')} differs from the image size {[height, width]}")
        return rle
    raise MaskReadError(f"unsupported segmentation of type {type(segmentation).__name__}")


class CocoSource(MaskSource):
    """Masks of a COCO instance JSON. Annotations are turned into compressed RLE once (small, in memory)
    and decoded per draw; corrupt annotations are skipped at indexing time and counted.

    Args:
        annotations: path of the COCO JSON.
        images_dir: optional image folder, used only for images whose record lacks width/height.
        min_area: keep masks covering at least this fraction of their image.
        crowd: keep crowd (``iscrowd=1``) annotations too.
        context: object-centred crops around each mask's box, scaled by this factor.
        limit: keep at most this many masks (the first ones, in file order).
    """

    def __init__(
        self,
        annotations: Path,
        images_dir: Path | None = None,
        *,
        min_area: float = 0.0,
        crowd: bool = False,
        context: float | None = None,
        limit: int | None = None,
        skips: SkipCounter | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or f"coco:{annotations.name}"
        self.context = context
        try:
            data = json.loads(Path(annotations).read_text())
            images = {int(r["id"]): r for r in data["images"]}
            records = data["annotations"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{annotations}: not a readable COCO instance JSON ({error})") from None
        skips = skips if skips is not None else SkipCounter()
        self.rles: list[dict[str, Any]] = []
        self.ids: list[str] = []
        for record in records:
            if limit is not None and len(self.rles) >= limit:
                break
            ident = str(record.get("id", "?")) if isinstance(record, dict) else "?"
            try:
                if not isinstance(record, dict):
                    raise MaskReadError("annotation is not an object")
                if record.get("iscrowd", 0) and not crowd:
                    continue
                image = images.get(int(record["image_id"]))
                if image is None:
                    raise MaskReadError(f"unknown image_id {record['image_id']}")
                height, width = _image_size(image, images_dir)
                rle = to_rle(record["segmentation"], height, width)
                area = float(mask_utils.area(rle))
            except (MaskReadError, KeyError, TypeError, ValueError, OverflowError) as error:
                skips.add(self.name, f"annotation {ident}", str(error) or type(error).__name__)
                continue
            if area <= 0:
                skips.add(self.name, f"annotation {ident}", "empty mask")
                continue
            if area < min_area * height * width:
                continue
            self.rles.append(rle)
            self.ids.append(ident)

    def __len__(self) -> int:
        return len(self.rles)

    def item_name(self, index: int) -> str:
        return f"annotation {self.ids[index]}"

    def load(self, index: int) -> np.ndarray:
        return mask_utils.decode(self.rles[index]).astype(np.float32)
