"""InternVL's dynamic tiling, as the official HiMTok predictor does it, with Pillow and torch only.

An image is resized (Pillow's default filter, bicubic for RGB) to the grid of `image_size` tiles whose aspect ratio
is closest to its own, among grids of `min_tiles..max_tiles` tiles, cut into those tiles, and followed by a
thumbnail of the whole image when there is more than one tile. Each tile becomes a float tensor normalised with
the ImageNet mean and std. No torchvision: the official per-tile `Resize((size, size), BICUBIC)` is an identity
on tiles that already have that size, and `ToTensor` + `Normalize` are two lines of torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TilingConfig:
    """How images become tiles: `image_size` square tiles, between `min_tiles` and `max_tiles` of them."""

    image_size: int = 448
    min_tiles: int = 1
    max_tiles: int = 12
    use_thumbnail: bool = True
    dynamic: bool = True

    def __post_init__(self) -> None:
        if self.image_size < 1:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if not 1 <= self.min_tiles <= self.max_tiles:
            raise ValueError(f"need 1 <= min_tiles <= max_tiles, got {self.min_tiles}, {self.max_tiles}")


def candidate_grids(min_tiles: int, max_tiles: int) -> list[tuple[int, int]]:
    """(columns, rows) grids with min..max tiles, by tile count, in the official order.

    The official code collects the grids in a set before sorting by tile count; grids with the same count keep
    the set's iteration order, which decides ties below. It is reproduced by building the same set.
    """
    grids = {
        (cols, rows)
        for n in range(min_tiles, max_tiles + 1)
        for cols in range(1, n + 1)
        for rows in range(1, n + 1)
        if min_tiles <= cols * rows <= max_tiles
    }
    return sorted(grids, key=lambda grid: grid[0] * grid[1])


def closest_grid(width: int, height: int, image_size: int, min_tiles: int, max_tiles: int) -> tuple[int, int]:
    """The grid whose aspect ratio is closest to the image's; on a tie, the later (larger) grid wins when the
    image has more than half the pixels of that grid."""
    aspect = width / height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in candidate_grids(min_tiles, max_tiles):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def as_rgb_image(image: Any) -> Image.Image:
    """A PIL RGB image from a PIL image, a path, or an HxWx3 (or HxW) uint8 array or tensor."""
    if isinstance(image, str | Path):
        try:
            with Image.open(image) as opened:
                return opened.convert("RGB")
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read image {image}: {err}") from err
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8 (0..255), got dtype {image.dtype}")
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"image arrays must be HxWx3 (or HxW), got shape {image.shape}")
        return Image.fromarray(np.ascontiguousarray(image), mode="RGB")
    raise ValueError(f"expected a PIL image, a path or a uint8 array, got {type(image).__name__}")


def tile_image(image: Image.Image, config: TilingConfig) -> list[Image.Image]:
    """The tiles of one RGB image (row by row), then the thumbnail when there are several tiles."""
    size = config.image_size
    if not config.dynamic:
        return [image.resize((size, size))]
    width, height = image.size
    cols, rows = closest_grid(width, height, size, config.min_tiles, config.max_tiles)
    resized = image.resize((cols * size, rows * size))
    tiles = [
        resized.crop((col * size, row * size, (col + 1) * size, (row + 1) * size))
        for row in range(rows)
        for col in range(cols)
    ]
    if config.use_thumbnail and len(tiles) > 1:
        tiles.append(image.resize((size, size)))
    return tiles


def normalize_tile(tile: Image.Image) -> torch.Tensor:
    """[3, S, S] float32: /255, then (x - mean) / std, in the order and precision torchvision uses."""
    pixels = torch.from_numpy(np.array(tile, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    return pixels.sub(mean).div(std)


def preprocess_images(images: Sequence[Any], config: TilingConfig) -> tuple[torch.Tensor, list[int]]:
    """`(pixel_values [N, 3, S, S], tiles per image)` for a batch of images (PIL, paths or uint8 arrays)."""
    tiles: list[torch.Tensor] = []
    counts: list[int] = []
    for image in images:
        image_tiles = tile_image(as_rgb_image(image), config)
        tiles.extend(normalize_tile(tile) for tile in image_tiles)
        counts.append(len(image_tiles))
    if not tiles:
        return torch.zeros(0, 3, config.image_size, config.image_size), counts
    return torch.stack(tiles), counts
