"""Mask quality metrics: per-sample IoU and boundary IoU of thresholded masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _binary(masks: Tensor, name: str) -> Tensor:
    if masks.ndim != 3:
        raise ValueError(f"{name} must be [B, H, W], got shape {tuple(masks.shape)}")
    return masks > 0.5 if masks.dtype != torch.bool else masks


def iou(pred: Tensor, target: Tensor) -> Tensor:
    """Per-sample IoU [B] of ``pred > 0.5`` and ``target > 0.5``; 1 when both are empty (official convention)."""
    p, t = _binary(pred, "pred"), _binary(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    inter = (p & t).flatten(1).sum(1).float()
    union = (p | t).flatten(1).sum(1).float()
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
