"""Ground-truth and predicted masks as COCO RLE, and the five pixel counts every protocol scores from.

Everything stays run-length encoded (pycocotools): intersections and areas of RLEs cost microseconds where
decoding a 640x480 mask costs a millisecond, so scoring 10,000 samples takes about a second.

Ground truth, as the reference loaders draw it:
* REFER / G_REFER: polygons of each target instance (``frPyObjects``), polygons of fewer than 3 points dropped
  (ReLA), RLE segmentations taken as they are, all of them merged: a union, so overlapping polygons of one
  annotation and overlapping instances count once (binarised with > 0, never == 1).
* ReasonSeg (LISA ``get_mask_from_json``): shapes labelled ``flag`` (any case) skipped, polygons sorted by filled area,
  largest first, so smaller ones overwrite larger ones, points truncated to int, outline and interior drawn;
  value 255 (ignore) when the label contains ``ignore``, else 1. LISA draws with cv2 (``polylines`` then
  ``fillPoly``); this draws with Pillow's polygon (outline + fill), which rasterises the same integer polygon.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from himtok_apps.data.source import image_to_mask, read_png
from himtok_apps.eval.samples import Ref

Rle = dict[str, Any]
IGNORE = 255


@dataclass(frozen=True)
class GroundTruth:
    """A target (``fg``: pixels equal to 1) and its ignore region (pixels equal to 255), both RLE."""

    fg: Rle
    ignore: Rle | None
    height: int
    width: int

    def dense(self) -> np.ndarray:
        """uint8 [H, W] in {0, 1, 255}."""
        out = decode(self.fg).astype(np.uint8)
        if self.ignore is not None:
            out[decode(self.ignore) > 0] = IGNORE
        return out


def encode(mask: np.ndarray) -> Rle:
    """A binary [H, W] array (anything > 0 is on) as a compressed RLE with ``bytes`` counts."""
    if mask.ndim != 2:
        raise ValueError(f"a mask must be [H, W], got shape {mask.shape}")
    return mask_utils.encode(np.asfortranarray(mask > 0, dtype=np.uint8))  # type: ignore[no-any-return]


def decode(rle: Rle) -> np.ndarray:
    """bool [H, W]."""
    with warnings.catch_warnings():  # pycocotools' decode trips numpy 2's __array__(copy=...) deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)  # type: ignore[no-any-return]


def empty(height: int, width: int) -> Rle:
    return encode(np.zeros((height, width), dtype=np.uint8))


def area(rle: Rle) -> int:
    return int(mask_utils.area(rle))


def intersection_area(a: Rle, b: Rle) -> int:
    return int(mask_utils.area(mask_utils.merge([a, b], intersect=True)))


def union(rles: list[Rle], height: int, width: int) -> Rle:
    if not rles:
        return empty(height, width)
    return rles[0] if len(rles) == 1 else mask_utils.merge(rles, intersect=False)  # type: ignore[no-any-return]


def to_json(rle: Rle) -> dict[str, Any]:
    """An RLE that ``json.dumps`` accepts (``counts`` as text)."""
    counts = rle["counts"]
    return {
        "size": list(rle["size"]),
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def from_json(value: Any, height: int, width: int) -> Rle:
    """A COCO RLE read from JSON (compressed text counts or uncompressed count lists) of exactly H x W."""
    if not isinstance(value, dict) or "size" not in value or "counts" not in value:
        raise ValueError("a mask must be a COCO RLE object with 'size' and 'counts'")
    size = value["size"]
    if not (isinstance(size, list | tuple) and len(size) == 2):
        raise ValueError(f"RLE size must be [height, width], got {size!r}")
    if (int(size[0]), int(size[1])) != (height, width):
        raise ValueError(f"mask is {size[0]}x{size[1]} (HxW) but the image is {height}x{width}")
    counts = value["counts"]
    if isinstance(counts, list):
        if sum(int(c) for c in counts) != height * width:
            raise ValueError("uncompressed RLE counts do not add up to height x width")
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)  # type: ignore[no-any-return]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    if not isinstance(counts, bytes):
        raise ValueError("RLE counts must be a string or a list of ints")
    rle = {"size": [height, width], "counts": counts}
    try:
        mask_utils.area(rle)
    except Exception as error:  # pycocotools raises plain Exceptions on corrupt strings
        raise ValueError(f"unreadable RLE counts: {error}") from None
    return rle


def from_png(path: Path, height: int, width: int) -> Rle:
    """A mask PNG (binary, or soft thresholded at 0.5) of exactly H x W."""
    array = image_to_mask(read_png(path), path.name)
    if array.shape != (height, width):
        raise ValueError(
            f"{path.name} is {array.shape[0]}x{array.shape[1]} (HxW) but the image is {height}x{width}"
        )
    return encode(array > 0.5)


# ---------------------------------------------------------------------------------------------- ground truth
def polygons(segmentation: list[Any]) -> list[list[float]]:
    """The polygons of a COCO polygon list with at least 3 points (ReLA drops the others)."""
    return [
        list(map(float, p))
        for p in segmentation
        if isinstance(p, list | tuple) and len(p) >= 6 and len(p) % 2 == 0
    ]


def segmentation_rle(segmentation: Any, height: int, width: int) -> Rle | None:
    """One COCO segmentation (polygon list, uncompressed or compressed RLE) as one RLE; None when it draws nothing."""
    if isinstance(segmentation, list):
        polys = polygons(segmentation)
        if not polys:
            return None
        return union(mask_utils.frPyObjects(polys, height, width), height, width)
    if isinstance(segmentation, dict):
        return from_json(segmentation, height, width)
    raise ValueError(f"unknown segmentation type {type(segmentation).__name__}")


def coco_ground_truth(ref: Ref) -> GroundTruth:
    h, w = ref.height, ref.width
    parts = [segmentation_rle(s, h, w) for s in ref.segmentations]
    return GroundTruth(union([p for p in parts if p is not None], h, w), None, h, w)


def draw_shapes(shapes: tuple[dict[str, Any], ...], height: int, width: int) -> np.ndarray:
    """ReasonSeg's LabelMe shapes as uint8 [H, W] in {0, 1, 255} (see the module docstring)."""
    drawn: list[tuple[int, int, list[tuple[int, int]]]] = []  # (filled area, value, points)
    for shape in shapes:
        label = str(shape.get("label", ""))
        if label.lower() == "flag":
            continue
        points = np.asarray(shape.get("points", []), dtype=np.float64)
        if points.ndim != 2 or points.shape[0] < 1 or points.shape[1] != 2:
            continue
        xy = [(int(x), int(y)) for x, y in points.astype(np.int32)]
        value = IGNORE if "ignore" in label.lower() else 1
        drawn.append((int(_fill([xy], height, width).sum()), value, xy))
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    # LISA draws in np.argsort(areas)[::-1] order: largest first, and among equal areas the later shape first.
    for index in np.argsort([item[0] for item in drawn], kind="stable")[::-1]:
        _, value, xy = drawn[int(index)]
        _polygon(draw, xy, value)
    return np.asarray(canvas, dtype=np.uint8)


def _polygon(draw: ImageDraw.ImageDraw, xy: list[tuple[int, int]], value: int) -> None:
    if len(xy) >= 3:
        draw.polygon(xy, fill=value, outline=value)
    elif len(xy) == 2:
        draw.line(xy, fill=value, width=1)
    else:
        draw.point(xy, fill=value)


def _fill(polys: list[list[tuple[int, int]]], height: int, width: int) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for xy in polys:
        _polygon(draw, xy, 1)
    return np.asarray(canvas, dtype=np.uint8)


def reasonseg_ground_truth(ref: Ref) -> GroundTruth:
    dense = draw_shapes(ref.shapes, ref.height, ref.width)
    ignore = dense == IGNORE
    return GroundTruth(encode(dense == 1), encode(ignore) if ignore.any() else None, ref.height, ref.width)


def ground_truth(ref: Ref) -> GroundTruth:
    return reasonseg_ground_truth(ref) if ref.shapes else coco_ground_truth(ref)


# ---------------------------------------------------------------------------------------------- counts
@dataclass(frozen=True)
class Counts:
    """The pixel counts of one prediction P against one ground truth (G = pixels equal to 1, N = ignore)."""

    pred: int  # |P|
    gt: int  # |G|
    ignore: int  # |N|
    inter: int  # |P & G|
    pred_ignore: int  # |P & N|


def counts(pred: Rle, gt: GroundTruth) -> Counts:
    """From RLEs, without decoding."""
    ignore = pred_ignore = 0
    if gt.ignore is not None:
        ignore, pred_ignore = area(gt.ignore), intersection_area(pred, gt.ignore)
    return Counts(area(pred), area(gt.fg), ignore, intersection_area(pred, gt.fg), pred_ignore)


def dense_counts(pred: np.ndarray, gt: np.ndarray) -> Counts:
    """The same from arrays: ``pred`` bool [H, W], ``gt`` uint8 [H, W] in {0, 1, 255}."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    p, g, n = pred.astype(bool), gt == 1, gt == IGNORE
    return Counts(int(p.sum()), int(g.sum()), int(n.sum()), int((p & g).sum()), int((p & n).sum()))
