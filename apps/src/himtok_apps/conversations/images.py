"""Reading images and mask PNGs for conversations; every failure is a ``SampleError`` with a reason."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from himtok_apps.conversations.sample import SampleError
from himtok_apps.data.errors import MaskReadError
from himtok_apps.data.source import image_to_mask

#: The official loader feeds ``L``-mode mask values / 255 to the encoder; its example masks have soft edges, so
#: we binarise at the middle grey (>= 128 of 255), as ../shared/data/README.md advises for them. Masks saved
#: as 0/1 bytes or 16-bit are read as the stage-1 sources read them (``image_to_mask``).
MASK_THRESHOLD = 0.5


def load_rgb(path: Path) -> Image.Image:
    """The image at ``path`` as RGB (grey and palette images converted, as the official loader does)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.convert("RGB")
    except FileNotFoundError:
        raise SampleError(f"missing image: {path}") from None
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise SampleError(f"unreadable image: {path.name}: {error}") from None


def load_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The mask PNG at ``path`` as bool [H, W]; ``size`` is the image's (height, width), which it must match."""
    try:
        with Image.open(path) as image:
            image.load()
            values = image_to_mask(image, path.name)
    except FileNotFoundError:
        raise SampleError(f"missing mask: {path}") from None
    except (OSError, UnidentifiedImageError, ValueError, MaskReadError) as error:
        raise SampleError(f"unreadable mask: {path.name}: {error}") from None
    if values.shape != size:
        raise SampleError(
            f"mask size: {path.name} is {values.shape[1]}x{values.shape[0]}, the image {size[1]}x{size[0]}"
        )
    return values >= MASK_THRESHOLD
