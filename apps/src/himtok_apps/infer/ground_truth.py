"""Scoring answers against a request's ground truth (`gt`: a mask PNG at the image's size).

The answer's masks are merged (their union; none is an empty prediction, the gres convention) and compared
with the ground truth before and, with `--refine`, after refinement. Each `results.jsonl` line then carries
`ground_truth` (IoU and pixel counts) and `summary.json` the mIoU and cIoU over every line that has one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from himtok_lmm_adapter import Segmentation

from himtok_apps.data.errors import MaskReadError
from himtok_apps.data.source import read_mask_png

KINDS = ("unrefined", "refined")


def read_ground_truth(path: str, size: tuple[int, int]) -> np.ndarray:
    """bool [H, W] (binary, 0/1, 0/255 or 16-bit PNGs; above half is in); `ValueError` when unreadable or when
    its size is not the image's (H, W)."""
    try:
        mask = read_mask_png(Path(path)) > 0.5
    except MaskReadError as err:
        raise ValueError(f"gt: {err}") from None
    if mask.shape != size:
        raise ValueError(f"gt {path} is {mask.shape[0]}x{mask.shape[1]} but its image is {size[0]}x{size[1]}")
    return mask


def answer_mask(segmentation: Segmentation, size: tuple[int, int]) -> np.ndarray:
    """The union of the answer's binary masks (all False when it has none)."""
    union = np.zeros(size, dtype=bool)
    for mask in segmentation.masks:
        union |= mask.binary.cpu().numpy().astype(bool).reshape(size)
    return union


def score(pred: np.ndarray, gt: np.ndarray) -> dict[str, Any]:
    """IoU (1 when both are empty) and the pixel counts cIoU sums."""
    intersection = int(np.logical_and(pred, gt).sum())
    union = int(np.logical_or(pred, gt).sum())
    iou = 1.0 if union == 0 else intersection / union
    return {"iou": round(iou, 4), "intersection": intersection, "union": union}


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """mIoU and cIoU per kind over the records that carry `ground_truth`; None when none does."""
    scored = [r["ground_truth"] for r in records if r.get("ground_truth")]
    if not scored:
        return None
    out: dict[str, Any] = {"requests": len(scored)}
    for kind in KINDS:
        rows = [s[kind] for s in scored if kind in s]
        if rows:
            union = sum(r["union"] for r in rows)
            out[kind] = {
                "requests": len(rows),
                "miou": round(float(np.mean([r["iou"] for r in rows])), 4),
                "ciou": round(sum(r["intersection"] for r in rows) / union, 4) if union else 1.0,
            }
    return out
