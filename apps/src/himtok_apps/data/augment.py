"""Mask augmentation: random crops (whole frame or around the object), horizontal flips, and the stretch
to the tokenizer's square input with antialiasing. Soft values are kept (no binarisation), as the official
preprocessing does."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class AugmentConfig:
    """How training masks are varied. Validation uses the same rendering with no randomness."""

    size: int = 256
    crop_prob: float = 0.8  # whole-frame sources: chance of a random crop instead of the full frame
    crop_scale: tuple[float, float] = (0.4, 1.0)  # area fraction of the frame a random crop keeps
    crop_keep: float = 0.5  # a random crop must keep this fraction of the mask (else retried)
    jitter: float = 0.25  # object-centred crops: log-scale and shift jitter
    flip: bool = True

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        if not (0.0 < low <= high <= 1.0):
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if self.size < 8:
            raise ValueError(f"size must be at least 8, got {self.size}")


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), exclusive ends, of the pixels above 0.5 (or above 0 for a faint soft mask)."""
    on = mask > 0.5
    if not on.any():
        on = mask > 0
        if not on.any():
            return None
    rows = np.flatnonzero(on.any(axis=1))
    cols = np.flatnonzero(on.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def crop_padded(mask: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """mask[y0:y1, x0:x1] where the window may extend past the frame (filled with zeros)."""
    height, width = mask.shape
    out = np.zeros((y1 - y0, x1 - x0), dtype=mask.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = mask[sy0:sy1, sx0:sx1]
    return out


def stretch(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size (aspect not kept, as the official code does), bilinear with antialiasing."""
    array = np.ascontiguousarray(mask, dtype=np.float32)
    if array.shape != (size, size):
        # PIL widens the bilinear kernel when shrinking, so downscaling is antialiased (and much faster
        # on CPU than torch's antialiased interpolate).
        image = Image.fromarray(array).resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32)
    return np.clip(array, 0.0, 1.0)


def _object_window(
    box: tuple[int, int, int, int], context: float, rng: np.random.Generator | None, jitter: float
) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    width, height = max(x1 - x0, 1) * context, max(y1 - y0, 1) * context
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if rng is not None and jitter > 0:
        width *= math.exp(rng.uniform(-jitter, jitter))
        height *= math.exp(rng.uniform(-jitter, jitter))
        cx += rng.uniform(-jitter, jitter) * width / 2
        cy += rng.uniform(-jitter, jitter) * height / 2
    width, height = max(width, 4.0), max(height, 4.0)
    left, top = round(cx - width / 2), round(cy - height / 2)
    return left, top, left + round(width), top + round(height)


def _random_window(
    mask: np.ndarray, rng: np.random.Generator, config: AugmentConfig
) -> tuple[int, int, int, int] | None:
    height, width = mask.shape
    total = float(mask.sum())
    for _ in range(5):
        area = rng.uniform(*config.crop_scale)
        ratio = math.exp(rng.uniform(-math.log(4 / 3), math.log(4 / 3)))
        w = min(width, max(4, round(width * math.sqrt(area * ratio))))
        h = min(height, max(4, round(height * math.sqrt(area / ratio))))
        x0 = int(rng.integers(0, width - w + 1))
        y0 = int(rng.integers(0, height - h + 1))
        if total == 0 or float(mask[y0 : y0 + h, x0 : x0 + w].sum()) >= config.crop_keep * total:
            return x0, y0, x0 + w, y0 + h
    return None


def render_mask(
    mask: np.ndarray,
    context: float | None,
    rng: np.random.Generator | None,
    config: AugmentConfig = AugmentConfig(),
) -> np.ndarray:
    """Crop, flip and stretch one mask to float32 [size, size] in [0, 1].

    ``rng=None`` renders deterministically (validation): the full frame, or the object's box x ``context``.
    """
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"mask must be a non-empty 2-D array, got shape {mask.shape}")
    window = None
    if context is not None:
        box = mask_box(mask)
        if box is not None:
            window = _object_window(box, context, rng, config.jitter)
    elif rng is not None and rng.random() < config.crop_prob:
        window = _random_window(mask, rng, config)
    if window is not None:
        mask = crop_padded(mask, *window)
    if rng is not None and config.flip and rng.random() < 0.5:
        mask = mask[:, ::-1]
    return stretch(mask, config.size)
