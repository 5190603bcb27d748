"""Moving probability maps and logits between the image, SAM's input frame and SAM's low-resolution grid.

SAM's input frame is the image resized so its long side is `frame` pixels, padded at the bottom and right to
`frame` x `frame`; the low-resolution grid (mask prompts and mask outputs) covers that padded frame at
`grid` x `grid` (a quarter of the frame for every released SAM).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def resize_map(values: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a [h, w] probability map (antialiased when shrinking, clipped to [0, 1] against rounding);
    float32, unchanged when already `size`."""
    tensor = torch.as_tensor(values, dtype=torch.float32)
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    shrinking = size[0] < tensor.shape[-2] or size[1] < tensor.shape[-1]
    batch = tensor.reshape(-1, 1, *tensor.shape[-2:])
    out = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
    return out.reshape(*tensor.shape[:-2], *size).clamp(0.0, 1.0)


def to_grid(probs: np.ndarray, resized: tuple[int, int], frame: int, grid: int) -> torch.Tensor:
    """A probability map over the whole image -> the [grid, grid] map over SAM's padded input frame."""
    inside = resize_map(probs, resized)
    padded = F.pad(inside, (0, frame - resized[1], 0, frame - resized[0]))
    return F.avg_pool2d(padded[None, None], kernel_size=frame // grid)[0, 0]


def grid_to_image(
    logits: torch.Tensor, resized: tuple[int, int], frame: int, image_size: tuple[int, int]
) -> torch.Tensor:
    """Low-resolution logits [K, grid, grid] -> logits [K, H, W] on the image (SAM's own post-processing)."""
    full = F.interpolate(logits[:, None], size=(frame, frame), mode="bilinear", align_corners=False)
    cropped = full[..., : resized[0], : resized[1]]
    return F.interpolate(cropped, size=image_size, mode="bilinear", align_corners=False)[:, 0]


def nearest_to_image(probs: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """The official predictor's resize of its 256x256 map to the image: PIL 'F' image, NEAREST."""
    height, width = image_size
    image = Image.fromarray(np.ascontiguousarray(probs, dtype=np.float32))  # mode "F"
    resized = image.resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(resized, dtype=np.float32)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; 1.0 when both are empty."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
