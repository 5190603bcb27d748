"""Dynamic tiling: grid choice, tile layout, thumbnail, input kinds and bad input (golden pixels: test_official_golden)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from himtok_lmm_adapter import TilingConfig, preprocess_images
from himtok_lmm_adapter.images import IMAGENET_MEAN, IMAGENET_STD, candidate_grids, closest_grid, tile_image
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image


def test_candidate_grids_cover_every_tile_count_once() -> None:
    grids = candidate_grids(1, 6)
    assert len(grids) == len(set(grids))
    assert {c * r for c, r in grids} == set(range(1, 7))
    assert [c * r for c, r in grids] == sorted(c * r for c, r in grids)


@given(
    width=st.integers(1, 3000),
    height=st.integers(1, 3000),
    max_tiles=st.integers(1, 12),
)
def test_closest_grid_has_the_closest_aspect_ratio(width: int, height: int, max_tiles: int) -> None:
    cols, rows = closest_grid(width, height, 448, 1, max_tiles)
    assert 1 <= cols * rows <= max_tiles
    best = min(abs(width / height - c / r) for c, r in candidate_grids(1, max_tiles))
    assert abs(width / height - cols / rows) == best


def test_tiles_are_row_major_crops_plus_a_thumbnail() -> None:
    # A 2:1 image of four colour bands becomes a 2x1 grid: left half, right half, then the thumbnail.
    pixels = np.zeros((50, 100, 3), dtype=np.uint8)
    pixels[:, 50:] = 255
    config = TilingConfig(image_size=28, min_tiles=1, max_tiles=4)
    tiles = tile_image(Image.fromarray(pixels), config)
    assert len(tiles) == 3 and all(t.size == (28, 28) for t in tiles)
    assert np.asarray(tiles[0]).mean() < 10 and np.asarray(tiles[1]).mean() > 245
    assert 100 < np.asarray(tiles[2]).mean() < 155
    no_thumb = TilingConfig(image_size=28, max_tiles=4, use_thumbnail=False)
    assert len(tile_image(Image.fromarray(pixels), no_thumb)) == 2
    single = TilingConfig(image_size=28, dynamic=False)
    assert len(tile_image(Image.fromarray(pixels), single)) == 1


def test_inputs_of_every_kind_give_the_same_pixels(tmp_path) -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(array).save(path)
    config = TilingConfig(image_size=28, max_tiles=2)
    reference, counts = preprocess_images([Image.fromarray(array)], config)
    for item in (array, torch.from_numpy(array), path, str(path), Image.fromarray(array).convert("RGBA")):
        values, n = preprocess_images([item], config)
        assert n == counts and torch.equal(values, reference)
    # Normalisation: a mid-grey tile maps to (0.5 - mean) / std.
    grey, _ = preprocess_images([np.full((28, 28, 3), 255, np.uint8)], TilingConfig(image_size=28))
    want = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(grey[0, :, 0, 0], want)


def test_bad_images_are_named(tmp_path) -> None:
    config = TilingConfig(image_size=28)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_images([np.zeros((4, 4, 3), np.float32)], config)
    with pytest.raises(ValueError, match="HxWx3"):
        preprocess_images([np.zeros((4, 4, 2), np.uint8)], config)
    with pytest.raises(ValueError, match="cannot read image"):
        preprocess_images([tmp_path / "missing.jpg"], config)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image"):
        preprocess_images([tmp_path / "bad.jpg"], config)
    with pytest.raises(ValueError, match="expected a PIL image"):
        preprocess_images([42], config)
    with pytest.raises(ValueError, match="min_tiles"):
        TilingConfig(min_tiles=3, max_tiles=2)
