"""level_labels: the three schedules against scipy / torch references, and label invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from himtok_hml_loss import level_labels, official_sigma, paper_sigma, resize_side
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter


def assert_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1.3e-6, atol: float = 1e-5) -> None:
    """numpy's assert_allclose on tensors (torch.testing imports torch.distributed on first use: seconds)."""
    assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    np.testing.assert_allclose(
        got.detach().double().numpy(), want.detach().double().numpy(), rtol=rtol, atol=atol
    )


def random_masks(seed: int, batch: int, height: int, width: int, soft: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch, 1, max(2, height // 8), max(2, width // 8), generator=gen)
    smooth = F.interpolate(noise, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return smooth if soft else (smooth > 0.5).float()


def scipy_paper(mask: np.ndarray, level: int) -> np.ndarray:
    return gaussian_filter(mask.astype(np.float64), paper_sigma(level), mode="constant", truncate=3.0)


def scipy_official(mask: np.ndarray, level: int) -> np.ndarray:
    sigma = official_sigma(level)
    out = gaussian_filter(mask.astype(np.float64), sigma, mode="constant", radius=math.ceil(3 * sigma))
    return out / max(out.max(), 1e-6)


@settings(max_examples=20)
@given(
    seed=st.integers(0, 10_000),
    height=st.integers(8, 48),
    width=st.integers(8, 48),
    levels=st.lists(st.integers(1, 31), min_size=1, max_size=3),
    soft=st.booleans(),
)
def test_paper_schedule_matches_scipy_gaussian_filter(seed, height, width, levels, soft):
    masks = random_masks(seed, 2, height, width, soft)
    labels = level_labels(masks, torch.tensor(levels), "paper").numpy()
    for b in range(2):
        for k, level in enumerate(levels):
            np.testing.assert_allclose(labels[b, k], scipy_paper(masks[b].numpy(), level), atol=1e-4, rtol=0)


def test_paper_schedule_matches_scipy_at_full_size_for_extreme_levels():
    masks = random_masks(3, 2, 256, 256)
    levels = torch.tensor([1, 2, 31])
    labels = level_labels(masks, levels).numpy()
    for b in range(2):
        for k, level in enumerate(levels.tolist()):
            np.testing.assert_allclose(labels[b, k], scipy_paper(masks[b].numpy(), level), atol=1e-5, rtol=0)


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), levels=st.lists(st.integers(1, 31), min_size=1, max_size=3, unique=True))
def test_official_schedule_is_blur_then_max_normalisation(seed, levels):
    masks = random_masks(seed, 2, 40, 36)
    labels = level_labels(masks, torch.tensor(levels), "official").numpy()
    for b in range(2):
        for k, level in enumerate(levels):
            np.testing.assert_allclose(
                labels[b, k], scipy_official(masks[b].numpy(), level), atol=1e-5, rtol=0
            )
            assert labels[b, k].max() == pytest.approx(1.0, abs=1e-6)


def test_official_schedule_sigma_98_at_level_1_is_wider_than_the_image():
    mask = torch.zeros(1, 64, 64)
    mask[0, 30:34, 30:34] = 1
    label = level_labels(mask, torch.tensor([1]), "official")[0, 0]
    # sigma 98 over 64 pixels: nearly flat, peak normalised to 1.
    assert official_sigma(1) == 98
    assert label.max().item() == pytest.approx(1.0)
    assert label.min().item() > 0.7
    np.testing.assert_allclose(label.numpy(), scipy_official(mask[0].numpy(), 1), atol=1e-5)


def test_resize_side_follows_official_formula_at_256():
    for level in range(1, 33):
        assert resize_side(level, 256) == max(16, round((level / 32) ** 1.5 * 256))
    assert resize_side(32, 256) == 256
    assert resize_side(1, 256) == 16


@pytest.mark.parametrize("level", [1, 6, 16, 31])
def test_resize_schedule_is_bilinear_down_then_up(level):
    masks = random_masks(level, 2, 256, 128)
    labels = level_labels(masks, torch.tensor([level]), "resize")[:, 0]
    side_h, side_w = resize_side(level, 256), resize_side(level, 128)
    small = F.interpolate(masks[:, None], size=(side_h, side_w), mode="bilinear", align_corners=False)
    want = F.interpolate(small, size=(256, 128), mode="bilinear", align_corners=False)[:, 0]
    assert_close(labels, want, atol=5e-5, rtol=0)


@pytest.mark.parametrize("schedule", ["paper", "official", "resize"])
def test_full_level_returns_the_mask_itself(schedule):
    masks = random_masks(0, 3, 24, 40, soft=True)
    labels = level_labels(masks, torch.tensor([32, 5, 32]), schedule)
    assert torch.equal(labels[:, 0], masks)
    assert torch.equal(labels[:, 2], masks)
    assert not torch.allclose(labels[:, 1], masks)


@settings(max_examples=15)
@given(
    seed=st.integers(0, 10_000),
    schedule=st.sampled_from(["paper", "official", "resize"]),
    levels=st.lists(st.integers(1, 32), min_size=1, max_size=4),
    soft=st.booleans(),
)
def test_labels_stay_in_unit_interval(seed, schedule, levels, soft):
    masks = random_masks(seed, 2, 32, 32, soft)
    labels = level_labels(masks, torch.tensor(levels), schedule)
    assert labels.shape == (2, len(levels), 32, 32)
    assert labels.dtype == torch.float32
    assert float(labels.min()) >= 0.0
    assert float(labels.max()) <= 1.0


@settings(max_examples=15)
@given(
    top=st.integers(0, 20),
    left=st.integers(0, 20),
    height=st.integers(1, 24),
    width=st.integers(1, 24),
    level=st.integers(4, 31),
)
def test_blur_keeps_mass_away_from_the_border(top, left, height, width, level):
    # Level >= 4 has sigma <= 18, radius <= 54: a 48x48 object with a 60-pixel margin loses nothing.
    mask = torch.zeros(1, 168, 168)
    mask[0, 60 + top : 60 + top + height, 60 + left : 60 + left + width] = 1
    label = level_labels(mask, torch.tensor([level]))
    assert label.sum().item() == pytest.approx(mask.sum().item(), rel=1e-4)


def test_blur_near_the_border_loses_mass_to_zero_padding():
    mask = torch.zeros(1, 64, 64)
    mask[0, :8, :8] = 1
    label = level_labels(mask, torch.tensor([4]))
    assert label.sum().item() < 0.5 * mask.sum().item()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV of the zero-extended image (the jump to 0 at the border counts, as zero padding implies)."""
    x = F.pad(x, (1, 1, 1, 1))
    return (x[..., 1:, :] - x[..., :-1, :]).abs().sum((-2, -1)) + (x[..., :, 1:] - x[..., :, :-1]).abs().sum(
        (-2, -1)
    )


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), soft=st.booleans())
def test_labels_get_smoother_as_level_falls(seed, soft):
    masks = random_masks(seed, 2, 64, 64, soft)
    levels = torch.arange(32, 0, -1)  # full level first, then ever coarser
    tv = total_variation(level_labels(masks, levels))  # [B, 32]
    # Blurring with a non-negative, normalised kernel never adds variation; consecutive truncated, sampled
    # Gaussians are not exact refinements of each other, hence the small tolerance between levels.
    assert bool((tv[:, 1:] <= tv[:, :-1] * (1 + 1e-3)).all())
    assert bool((tv[:, 1:] <= tv[:, :1] * (1 + 1e-6)).all())
    assert bool((tv[:, -1] < 0.5 * tv[:, 0]).all())


def test_per_sample_levels_equal_shared_levels_row_by_row():
    masks = random_masks(1, 3, 32, 48)
    per_sample = torch.tensor([[1, 7], [31, 2], [12, 12]])
    labels = level_labels(masks, per_sample)
    for b in range(3):
        alone = level_labels(masks[b : b + 1], per_sample[b])
        assert_close(labels[b], alone[0], atol=1e-6, rtol=0)


def test_accepts_bool_uint8_and_channel_dim():
    masks = random_masks(2, 2, 16, 16)
    want = level_labels(masks, torch.tensor([3]))
    assert_close(level_labels(masks.bool(), torch.tensor([3])), want)
    assert_close(level_labels(masks.to(torch.uint8), torch.tensor([3])), want)
    assert_close(level_labels(masks[:, None], torch.tensor([3])), want)


@pytest.mark.parametrize(
    ("masks", "levels", "schedule", "message"),
    [
        (torch.rand(2, 8, 8), torch.tensor([3]), "gauss", "schedule"),
        (torch.rand(2, 8, 8), torch.tensor([0]), "paper", "1..32"),
        (torch.rand(2, 8, 8), torch.tensor([33]), "paper", "1..32"),
        (torch.rand(2, 8, 8), torch.tensor([2.0]), "paper", "integer"),
        (torch.rand(2, 8, 8), torch.tensor([[1], [2], [3]]), "paper", "rows"),
        (torch.rand(8, 8), torch.tensor([3]), "paper", "shape"),
        (torch.rand(2, 8, 8) * 2, torch.tensor([3]), "paper", r"\[0, 1\]"),
        (torch.full((2, 8, 8), 255, dtype=torch.uint8), torch.tensor([3]), "paper", "0 or 1"),
        (torch.zeros(2, 8, 8, dtype=torch.int32), torch.tensor([3]), "paper", "dtype"),
    ],
)
def test_bad_inputs_raise_value_error(masks, levels, schedule, message):
    with pytest.raises(ValueError, match=message):
        level_labels(masks, levels, schedule)


@pytest.mark.shared
def test_real_masks_match_scipy(golden_tiny):
    masks = torch.from_numpy(np.load(golden_tiny / "inputs.npz")["masks"][:10:3])
    labels = level_labels(masks, torch.tensor([1, 8, 24])).numpy()
    for b in range(masks.shape[0]):
        for k, level in enumerate([1, 8, 24]):
            np.testing.assert_allclose(labels[b, k], scipy_paper(masks[b].numpy(), level), atol=1e-5, rtol=0)
