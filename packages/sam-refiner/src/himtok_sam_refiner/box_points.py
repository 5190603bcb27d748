"""Prompts for standard SAM weights from a coarse mask: its box, positive points at the interior maxima of the
distance transform, negative points just outside its edge."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class BoxPointsSettings:
    """How `prompts="box+points"` builds prompts from a coarse mask and when it keeps the coarse mask.

    threshold: probability above which a coarse pixel is in the mask (box, points and agreement).
    max_positive / max_negative: at most this many positive / negative points per mask.
    min_peak_fraction: a distance-transform maximum becomes a positive point only if its depth (distance to the
        edge) is at least this fraction of the deepest one, so thin slivers and specks get none.
    negative_band: negative points lie outside the mask at a distance from it between r and 2r, where
        r = max(2 grid cells, negative_band * the box's long side).
    mask_logit_limit: the dense prompt is logit(p) clipped to +-this value.
    fallback_iou: SAM's mask is replaced by the coarse mask when their IoU is below this value (SAM then
        answered about something else: another object, the background, or nothing).
    """

    threshold: float = 0.5
    max_positive: int = 3
    max_negative: int = 2
    min_peak_fraction: float = 0.3
    negative_band: float = 0.1
    mask_logit_limit: float = 6.0
    fallback_iou: float = 0.5


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """[x0, y0, x1, y1] of a boolean mask, inclusive pixel indices (SAM's convention); None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float32)


def positive_points(mask: np.ndarray, settings: BoxPointsSettings) -> np.ndarray:
    """[k, 2] (row, col) cells inside `mask`, deepest first.

    Candidates are the local maxima of the distance to the mask's edge (the image border counts as edge). They are
    taken greedily by depth (ties: nearest the mask's centroid), skipping any whose inscribed disk overlaps one
    already taken, so the points spread over the mask's parts and components.
    """
    if settings.max_positive <= 0 or not mask.any():
        return np.zeros((0, 2), dtype=np.int64)
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    peaks = mask & (depth == ndimage.maximum_filter(depth, size=3, mode="constant"))
    cells = np.argwhere(peaks)
    values = depth[peaks]
    centroid = np.argwhere(mask).mean(axis=0)
    order = np.lexsort((np.hypot(*(cells - centroid).T), -values))
    chosen: list[int] = []
    for index in order:
        if values[index] < settings.min_peak_fraction * values[order[0]]:
            break
        if all(np.hypot(*(cells[index] - cells[j])) >= values[index] + values[j] for j in chosen):
            chosen.append(int(index))
            if len(chosen) == settings.max_positive:
                break
    return cells[chosen]


def negative_points(
    mask: np.ndarray, valid: np.ndarray, box: np.ndarray, avoid: np.ndarray, settings: BoxPointsSettings
) -> np.ndarray:
    """[k, 2] (row, col) cells outside `mask` and inside `valid`, at distance [r, 2r] from the mask.

    Cells inside the box (x0, y0, x1, y1 in grid cells) come first when there are any: there the box alone does
    not tell SAM the object is absent. Among the candidates, farthest-point sampling from the `avoid` cells
    (the positive points) spreads them around the object.
    """
    if settings.max_negative <= 0 or not mask.any():
        return np.zeros((0, 2), dtype=np.int64)
    x0, y0, x1, y1 = box
    band = max(2.0, settings.negative_band * max(x1 - x0 + 1, y1 - y0 + 1))
    distance = ndimage.distance_transform_edt(~mask)
    ring = valid & ~mask & (distance >= band) & (distance <= 2 * band)
    rows, cols = np.indices(mask.shape)
    in_box = ring & (cols >= x0) & (cols <= x1) & (rows >= y0) & (rows <= y1)
    candidates = np.argwhere(in_box if in_box.any() else ring)
    if len(candidates) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    anchors = avoid if len(avoid) else np.argwhere(mask).mean(axis=0, keepdims=True)
    nearest = np.min(np.hypot(*(candidates[:, None, :] - anchors[None, :, :]).transpose(2, 0, 1)), axis=1)
    chosen: list[int] = []
    for _ in range(settings.max_negative):
        index = int(np.argmax(nearest))
        if chosen and nearest[index] <= 0:
            break
        chosen.append(index)
        nearest = np.minimum(nearest, np.hypot(*(candidates - candidates[index]).T))
    return candidates[chosen]
