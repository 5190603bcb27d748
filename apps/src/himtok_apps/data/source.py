"""The interface every mask source implements, and the PNG reader they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from himtok_apps.data.errors import MaskReadError


class MaskSource(ABC):
    """An indexed collection of masks. ``load(i)`` returns float32 [H, W] in [0, 1] or raises MaskReadError."""

    name: str = "source"
    #: Object-centred crops: crop = mask box scaled by this factor (None: whole frame).
    context: float | None = None
    #: Training augmentation (random crops, flips); False renders every draw like validation does.
    augment: bool = True

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def item_name(self, index: int) -> str:
        """A short human-readable identifier of item ``index`` (file name, annotation id)."""

    @abstractmethod
    def load(self, index: int) -> np.ndarray: ...


def read_png(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise MaskReadError(f"unreadable image {path.name}: {error}") from None


def image_to_mask(image: Image.Image, name: str) -> np.ndarray:
    """A binary or soft mask image as float32 [H, W] in [0, 1].

    Mode ``1`` and 0/1-valued images are binary; 8-bit images are scaled by 1/255 (soft edges kept), 16-bit by
    1/65535; colour images are converted to grey first (any non-black pixel of a 0/255 palette becomes 1).
    """
    if image.mode == "1":
        return np.asarray(image, dtype=np.float32)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 1.0 if array.max() <= 1 else 65535.0
        return np.clip(array / top, 0.0, 1.0).astype(np.float32)
    if image.mode != "L":
        image = image.convert("L")
    array = np.asarray(image, dtype=np.float32)
    if array.size == 0:
        raise MaskReadError(f"empty image {name}")
    if array.max() <= 1.0:  # 0/1 masks saved as 8-bit
        return array
    return array / 255.0


def read_mask_png(path: Path) -> np.ndarray:
    return image_to_mask(read_png(path), path.name)


def list_pngs(folder: Path) -> list[Path]:
    """Every ``*.png`` under ``folder`` (recursively), sorted for a stable order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".png" and p.is_file())
