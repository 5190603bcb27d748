"""What a request leaves in `--out`: PNGs per mask and one `results.jsonl` line.

Per request `<name>/` (the id, made safe for file names): `mask-K.png` (binary, 0/255, at the image's size),
`overlay-K.png` (the mask tinted over the image, the answer's K-th box drawn), `soft-K.png` with `--save-soft`
(16-bit gray: probability x 65535), and with `--all-lengths` `lengths.png` (the first mask decoded from 1, 2, ...,
32 tokens, tinted over thumbnails, 8 per row). The line holds masks as COCO RLE (pycocotools), so it is
self-contained; the PNGs are for people.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from himtok_apps.infer.engine import Outcome

PALETTE = ((255, 56, 56), (56, 142, 255), (40, 200, 90), (255, 178, 29), (186, 85, 255), (0, 210, 210))
TINT = 0.5
# zlib run-length strategy: for photos (overlays) 4x faster than PIL's default and a few % larger; for masks
# smaller and faster than either.
PNG_OPTIONS: dict[str, Any] = {"compress_level": 6, "compress_type": zlib.Z_RLE}
STRIP_COLUMNS = 8
STRIP_THUMB = 160
STRIP_GAP = 4


def safe_name(ident: str) -> str:
    """A file name for a request id: the id itself when it is plain, else a cleaned form plus a short hash."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", ident).strip("._") or "request"
    if cleaned == ident and len(ident) <= 120:
        return ident
    return f"{cleaned[:100]}-{hashlib.sha1(ident.encode()).hexdigest()[:8]}"


def rle_of(binary: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a bool [H, W] mask: `{"size": [H, W], "counts": str}` (pycocotools' compressed form)."""
    encoded = mask_utils.encode(np.asfortranarray(binary.astype(np.uint8)))
    return {"size": [int(encoded["size"][0]), int(encoded["size"][1])], "counts": encoded["counts"].decode()}


def mask_of(rle: dict[str, Any]) -> np.ndarray:
    """The bool [H, W] mask of an RLE written by `rle_of` (for readers of results.jsonl)."""
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def tint(image: Image.Image, binary: np.ndarray, color: tuple[int, int, int]) -> Image.Image:
    """`image` with `binary` blended in `color` (alpha `TINT`); PIL's C loops, about 1 ms for 640x480."""
    blended = Image.blend(image, Image.new("RGB", image.size, color), TINT)
    return Image.composite(blended, image, Image.fromarray(binary.astype(np.uint8) * 255))


def overlay(
    image: Image.Image,
    binary: np.ndarray | None,
    color: tuple[int, int, int],
    box: Sequence[float] | None,
) -> Image.Image:
    """The mask tinted over the image and the answer's box drawn in the same colour."""
    out = tint(image, binary, color) if binary is not None else image.copy()
    if box is not None:
        width = max(2, round(min(image.size) / 200))
        ImageDraw.Draw(out).rectangle(tuple(box), outline=color, width=width)
    return out


def lengths_strip(image: Image.Image, masks: list[torch.Tensor], color: tuple[int, int, int]) -> Image.Image:
    """One image: the mask from 1..L tokens tinted over thumbnails, `STRIP_COLUMNS` per row, numbered."""
    scale = STRIP_THUMB / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    thumb = image.resize(size, Image.Resampling.BILINEAR)
    rows = -(-len(masks) // STRIP_COLUMNS)
    step = (size[0] + STRIP_GAP, size[1] + STRIP_GAP)
    sheet = Image.new(
        "RGB", (STRIP_COLUMNS * step[0] - STRIP_GAP, rows * step[1] - STRIP_GAP), (255, 255, 255)
    )
    for n, binary in enumerate(masks):
        small = Image.fromarray(binary.numpy().astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
        tile = tint(thumb, np.asarray(small) > 127, color)
        draw = ImageDraw.Draw(tile)
        draw.rectangle((0, 0, 16 if n < 9 else 22, 12), fill=(0, 0, 0))
        draw.text((2, 0), str(n + 1), fill=(255, 255, 255))
        sheet.paste(tile, ((n % STRIP_COLUMNS) * step[0], (n // STRIP_COLUMNS) * step[1]))
    return sheet


def _save(image: Image.Image, path: Path) -> None:
    image.save(path, format="PNG", **PNG_OPTIONS)


def _box(values: tuple[float, ...] | None) -> list[float] | None:
    return [round(float(v), 2) for v in values] if values is not None else None


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


class OutputWriter:
    """Writes the files of one outcome under `out` and returns its `results.jsonl` record."""

    def __init__(
        self, out: Path, *, save_soft: bool = False, overlays: bool = True, images: bool = True
    ) -> None:
        self.out = out
        self.save_soft = save_soft
        self.overlays = overlays
        self.images = images  # False: records only, no PNG at all

    def write(self, outcome: Outcome) -> dict[str, Any]:
        request, segmentation = outcome.request, outcome.segmentation
        record: dict[str, Any] = {"id": request.id, "index": request.index, "image": request.image}
        if request.prompt is not None:
            record["prompt"] = request.prompt
        record.update(request.describe())
        record["question"] = outcome.question
        if segmentation is None:
            record.update(answer=None, masks=[], boxes=[], error=outcome.error)
            return self._finish(record, outcome)
        folder = self.out / safe_name(request.id)
        answer_boxes = [tuple(b) for b in segmentation.boxes]
        masks = []
        for k, mask in enumerate(segmentation.masks):
            binary = mask.binary.numpy()
            entry: dict[str, Any] = {
                "rle": rle_of(binary),
                "area": int(binary.sum()),
                "box": _box(mask.box()),
                "codes": mask.codes,
                "num_tokens": mask.num_tokens,
                "well_formed": mask.well_formed,
            }
            if outcome.refined is not None:
                entry["refine"] = outcome.refined[k]
            if self.images and outcome.image is not None:
                folder.mkdir(parents=True, exist_ok=True)
                files = {"mask": f"mask-{k}.png"}
                _save(Image.fromarray(binary.astype(np.uint8) * 255), folder / files["mask"])
                if self.overlays:
                    files["overlay"] = f"overlay-{k}.png"
                    box = answer_boxes[k] if k < len(answer_boxes) else None
                    tinted = overlay(outcome.image, binary, PALETTE[k % len(PALETTE)], box)
                    _save(tinted, folder / files["overlay"])
                if self.save_soft:
                    files["soft"] = f"soft-{k}.png"
                    levels = (mask.soft.clamp(0, 1) * 65535).round().numpy().astype(np.uint16)
                    _save(Image.fromarray(levels), folder / files["soft"])
                entry["files"] = {name: f"{folder.name}/{file}" for name, file in files.items()}
            masks.append(entry)
        if (
            not segmentation.masks
            and answer_boxes
            and self.overlays
            and self.images
            and outcome.image is not None
        ):
            folder.mkdir(parents=True, exist_ok=True)
            _save(overlay(outcome.image, None, PALETTE[0], answer_boxes[0]), folder / "overlay-0.png")
            record["overlay"] = f"{folder.name}/overlay-0.png"
        record.update(
            answer=segmentation.answer,
            finished=segmentation.finished,
            size=list(segmentation.size),
            num_tokens=segmentation.masks[0].num_tokens if segmentation.masks else None,
            masks=masks,
            boxes=[_box(b) for b in answer_boxes],
            refs=[ref.text for ref in segmentation.parsed.refs],
        )
        if outcome.exists is not None or request.task in ("gres", "openvocab"):
            record["exists"] = outcome.exists
        if outcome.lengths is not None:
            full = outcome.lengths[-1]
            lengths: dict[str, Any] = {"iou_vs_full": [round(iou(m, full), 4) for m in outcome.lengths]}
            if self.images and outcome.image is not None:
                folder.mkdir(parents=True, exist_ok=True)
                _save(lengths_strip(outcome.image, outcome.lengths, PALETTE[0]), folder / "lengths.png")
                lengths["file"] = f"{folder.name}/lengths.png"
            record["lengths"] = lengths
        if outcome.ground_truth is not None:
            record["ground_truth"] = outcome.ground_truth
        record["error"] = outcome.error
        if segmentation.problems:
            record["problems"] = segmentation.problems
        return self._finish(record, outcome)

    def _finish(self, record: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        record["batch_size"] = outcome.batch_size
        record["timings"] = outcome.times.as_dict()
        return record
