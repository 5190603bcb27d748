"""Mask quality metrics: per-sample IoU (and its pixel counts) and boundary IoU of thresholded masks, and two
training-free ceilings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _binary(masks: Tensor, name: str) -> Tensor:
    if masks.ndim != 3:
        raise ValueError(f"{name} must be [B, H, W], got shape {tuple(masks.shape)}")
    return masks > 0.5 if masks.dtype != torch.bool else masks


def intersection_union(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample pixel counts ``(|P & T|, |P | T|)`` [B] (int64) of ``pred > 0.5`` and ``target > 0.5``."""
    p, t = _binary(pred, "pred"), _binary(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    return (p & t).flatten(1).sum(1), (p | t).flatten(1).sum(1)


def iou(pred: Tensor, target: Tensor) -> Tensor:
    """Per-sample IoU [B] of ``pred > 0.5`` and ``target > 0.5``; 1 when both are empty (official convention)."""
    inter, union = (x.float() for x in intersection_union(pred, target))
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(union))


def inner_boundary(masks: Tensor, width: int) -> Tensor:
    """Pixels of each mask within ``width`` px (chessboard distance) of its contour: mask minus its erosion."""
    background = F.pad((~masks).float(), (width,) * 4, value=1.0)  # outside the frame counts as background
    # Background pixels in each (2 width + 1)^2 window, from running sums along rows then columns: O(1) per
    # pixel, far cheaper on CPU than a max filter with a large kernel.
    size = 2 * width + 1
    return masks & (_window_sum(_window_sum(background, size, -1), size, -2) > 0)


def _window_sum(x: Tensor, size: int, dim: int) -> Tensor:
    running = F.pad(x.cumsum(dim), (1, 0) if dim == -1 else (0, 0, 1, 0))
    length = running.shape[dim]
    return running.narrow(dim, size, length - size) - running.narrow(dim, 0, length - size)


def boundary_iou(pred: Tensor, target: Tensor, dilation_ratio: float = 0.02) -> Tensor:
    """Per-sample Boundary IoU (Cheng et al., 2021) [B], band width = ratio x image diagonal (>= 1 px).

    1 when both boundaries are empty (both masks empty).
    """
    p, t = _binary(pred, "pred"), _binary(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    height, width = p.shape[-2:]
    band = max(1, round(dilation_ratio * (height**2 + width**2) ** 0.5))
    return iou(inner_boundary(p, band), inner_boundary(t, band))


def resolution_only_iou(masks: Tensor, size: int) -> Tensor:
    """Per-mask IoU [B] after area-downsampling ``masks`` [B, H, W] to ``size`` and bilinear upsampling back:
    the best a model that predicts at ``size`` x ``size`` can do."""
    low = F.interpolate(masks[:, None].float(), size=(size, size), mode="area")
    back = F.interpolate(low, size=masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return iou(back, masks)


def bounding_box_iou(masks: Tensor) -> Tensor:
    """Per-mask IoU [B] of each mask's filled bounding box: what knowing only position and extent gives."""
    boxes = torch.zeros(masks.shape, dtype=torch.float32, device=masks.device)
    for box, mask in zip(boxes, masks > 0.5, strict=True):
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        if len(rows):
            box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = 1.0
    return iou(boxes, masks)
