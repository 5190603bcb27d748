"""Shared fixtures: tiny random SAMs (standard and official layout) and small synthetic images and masks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from himtok_sam_refiner import SamRefiner, tiny_sam

# The tiny models gain nothing from intra-op threads, and the CI machines are small and shared.
torch.set_num_threads(1)


def disk(size: tuple[int, int], center: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean disk mask; center is (row, col)."""
    rows, cols = np.indices(size)
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 < radius**2


def soft_blob(side: int, center: tuple[float, float], sigma: float) -> np.ndarray:
    """A Gaussian probability map [side, side] (float32), like the LMM's soft 256x256 maps."""
    rows, cols = np.indices((side, side))
    return np.exp(-((rows - center[0]) ** 2 + (cols - center[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def synth() -> SimpleNamespace:
    """Synthetic inputs: synth.disk(size, center, radius), synth.soft_blob(side, center, sigma), synth.image(h, w)."""
    return SimpleNamespace(disk=disk, soft_blob=soft_blob, image=random_image)


@pytest.fixture(scope="module")
def refiner() -> SamRefiner:
    """Standard-layout tiny SAM (128-pixel frame, 32x32 mask grid); tests must not modify it."""
    return SamRefiner(tiny_sam(seed=0))


@pytest.fixture(scope="module")
def official_refiner() -> SamRefiner:
    """Official-layout tiny SAM (the released refiner's modules, random weights)."""
    return SamRefiner(tiny_sam(seed=1, official=True))
