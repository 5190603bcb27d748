"""The official predictor's inputs, bugs included (`official-himtok.md` §6.4): stretched image, one point at the
probability-weighted centroid with the official foreground rule, and the dense prompt (2p - 1) * 6."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .frames import resize_map

MASK_LOGIT_SCALE = 6.0
COMPACTNESS_LIMIT = 0.1


def stretch_image(image: np.ndarray, frame: int) -> torch.Tensor:
    """uint8 [H, W, 3] -> uint8 [3, frame, frame]: PIL resize with its default filter, aspect ratio ignored."""
    stretched = Image.fromarray(image).resize((frame, frame))
    return torch.from_numpy(np.asarray(stretched).copy()).permute(2, 0, 1)


def normalize_pixels(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 [B, 3, S, S] -> float32, as `sam.preprocess` (no padding: the image is already square)."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (images - mean_t) / std_t


def official_grid(mask: np.ndarray, grid: int) -> torch.Tensor:
    """The coarse map on the official 256x256 prompt grid (bilinear when given at another size)."""
    return resize_map(mask, (grid, grid))


def official_point_prompts(masks: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per [grid, grid] probability map: (the point [x, y] in input-frame pixels, its label 0/1).

    The point is the probability-weighted centroid times `scale` (4 for SAM's 1024 frame over the 256 grid).
    The label is background when the map has a non-zero pixel on its border *and* its compactness
    4*pi*sum(p)/perimeter^2 is below 0.1, the perimeter counting pixels where (3x3-dilated p > 0) != p. With a
    soft map nearly every pixel counts, so soft prompts get a negative point (the known bug). An empty map gives
    the centre, labelled positive. Computed in float32 as the official code does.
    """
    _, height, width = masks.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    ones = torch.ones(1, 1, 3, 3, dtype=torch.float32)
    points, labels = [], []
    for mask in masks.float():
        total = mask.sum()
        if total > 0:
            centroid = torch.stack([(xs * mask).sum() / total, (ys * mask).sum() / total])
            touches_border = bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
            dilated = F.conv2d(mask[None, None], ones, padding=1)[0, 0] > 0
            perimeter = (dilated.float() != mask).sum().float()
            compactness = 4 * math.pi * total / perimeter**2 if perimeter > 0 else torch.tensor(0.0)
            foreground = not (touches_border and bool(compactness < COMPACTNESS_LIMIT))
        else:
            centroid = torch.tensor([width * 0.5, height * 0.5], dtype=torch.float32)
            foreground = True
        points.append(centroid * scale)
        labels.append(int(foreground))
    if not points:
        return torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)
    return torch.stack(points), torch.tensor(labels, dtype=torch.long)


def official_mask_logits(masks: torch.Tensor) -> torch.Tensor:
    """The dense prompt: probabilities mapped linearly to [-6, 6]."""
    return (masks * 2 - 1) * MASK_LOGIT_SCALE
