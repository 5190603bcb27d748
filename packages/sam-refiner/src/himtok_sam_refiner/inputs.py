"""Checking and normalising what `SamRefiner.refine` is given: images, coarse masks, and how they pair up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

ImageLike = Image.Image | np.ndarray
MaskLike = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class Batch:
    """Images as uint8 [H, W, 3] arrays and the coarse masks (float32 [h, w] in [0, 1]) of each."""

    images: list[np.ndarray]
    masks: list[np.ndarray]  # flat over images
    image_index: np.ndarray  # [M] int64: which image each mask belongs to

    def size(self, mask: int) -> tuple[int, int]:
        height, width = self.images[int(self.image_index[mask])].shape[:2]
        return height, width


def as_image(image: Any, where: str) -> np.ndarray:
    """A PIL image (any mode) or a uint8 [H, W] / [H, W, 3] array as uint8 [H, W, 3]."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        raise ValueError(f"{where}: pass images as PIL images or uint8 numpy arrays [H, W, 3], not tensors")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{where}: expected a PIL image or a uint8 numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{where}: images must be uint8 (0..255), got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{where}: expected [H, W, 3] (or [H, W]), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{where}: empty image {image.shape}")
    return np.ascontiguousarray(image)


def as_mask(mask: Any, where: str) -> np.ndarray:
    """A bool or floating [h, w] array/tensor of probabilities in [0, 1] as float32."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{where}: expected a numpy array or tensor, got {type(mask).__name__}")
    if mask.dtype == np.bool_:
        return mask.astype(np.float32)
    if not np.issubdtype(mask.dtype, np.floating):
        hint = (
            " (divide 0/255 masks by 255, or pass mask > 0)" if np.issubdtype(mask.dtype, np.integer) else ""
        )
        raise ValueError(f"{where}: coarse masks must be bool or float probabilities, got {mask.dtype}{hint}")
    if mask.ndim != 2 or mask.shape[0] == 0 or mask.shape[1] == 0:
        raise ValueError(f"{where}: expected a 2-D mask [h, w], got shape {mask.shape}")
    if not np.isfinite(mask).all():
        raise ValueError(f"{where}: coarse mask holds NaN or infinite values")
    low, high = float(mask.min()), float(mask.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{where}: coarse mask values must lie in [0, 1], got [{low:g}, {high:g}]")
    return mask.astype(np.float32)


def check_pairing(mask: np.ndarray, image_size: tuple[int, int], where: str) -> None:
    """A coarse mask covers its whole image: the image's size, a square map (stretched, as the LMM emits it),
    or any size with the image's aspect ratio (within one mask pixel)."""
    h, w = mask.shape
    height, width = image_size
    if (h, w) == (height, width) or h == w or abs(h * width - w * height) <= width:
        return
    raise ValueError(
        f"{where}: coarse mask is {h}x{w} but its image is {height}x{width}; give it at the image's size, "
        "with the image's aspect ratio, or as a square map stretched over the image"
    )


def _is_single_image(images: Any) -> bool:
    return isinstance(images, Image.Image) or (isinstance(images, np.ndarray) and images.ndim in (2, 3))


def _masks_of(entry: Any, where: str) -> list[Any]:
    """One image's entry: a 2-D mask, a stack [K, h, w], or a sequence of 2-D masks."""
    if isinstance(entry, np.ndarray | torch.Tensor):
        if entry.ndim == 2:
            return [entry]
        if entry.ndim == 3:
            return list(entry)
        raise ValueError(f"{where}: expected [h, w] or [K, h, w], got shape {tuple(entry.shape)}")
    if isinstance(entry, Sequence) and not isinstance(entry, str):
        return list(entry)
    raise ValueError(
        f"{where}: expected a mask, a stack of masks or a list of masks, got {type(entry).__name__}"
    )


def normalize(images: Any, coarse: Any) -> Batch:
    """Pair images with their coarse masks.

    `images` is one image or a sequence of them; `coarse` holds one entry per image (for a single image: the
    entry itself), each entry a 2-D mask, a [K, h, w] stack or a list of 2-D masks of that image.
    """
    if _is_single_image(images):
        images, coarse = [images], [coarse]
    elif isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if not isinstance(images, Sequence):
        raise ValueError(f"images: expected an image or a sequence of images, got {type(images).__name__}")
    if isinstance(coarse, np.ndarray | torch.Tensor) and coarse.ndim in (3, 4):
        coarse = list(coarse)
    if not isinstance(coarse, Sequence) or isinstance(coarse, str):
        raise ValueError(f"coarse: expected one entry per image, got {type(coarse).__name__}")
    if len(coarse) != len(images):
        raise ValueError(
            f"got {len(images)} images but {len(coarse)} coarse-mask entries (one entry per image)"
        )
    arrays = [as_image(image, f"images[{i}]") for i, image in enumerate(images)]
    masks: list[np.ndarray] = []
    index: list[int] = []
    for i, entry in enumerate(coarse):
        for k, raw in enumerate(_masks_of(entry, f"coarse[{i}]")):
            where = f"coarse[{i}][{k}]"
            mask = as_mask(raw, where)
            check_pairing(mask, arrays[i].shape[:2], where)
            masks.append(mask)
            index.append(i)
    return Batch(arrays, masks, np.asarray(index, dtype=np.int64))
