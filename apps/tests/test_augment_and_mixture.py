"""Augmentation invariants and the deterministic, rank-sharded mixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from himtok_apps.data import AugmentConfig, MaskMixture, MaskSource, mask_box, render_mask, stretch
from hypothesis import assume, given, settings
from hypothesis import strategies as st


class ArraySource(MaskSource):
    """Masks held in memory (for tests)."""

    def __init__(self, masks: list[np.ndarray], context: float | None = None, name: str = "arrays") -> None:
        self.masks, self.context, self.name = masks, context, name

    def __len__(self) -> int:
        return len(self.masks)

    def item_name(self, index: int) -> str:
        return str(index)

    def load(self, index: int) -> np.ndarray:
        return self.masks[index]


def rectangle(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((height, width), np.float32)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 1.0
    return mask


boxes = st.tuples(st.integers(8, 80), st.integers(8, 80)).flatmap(
    lambda hw: st.tuples(
        st.just(hw),
        st.integers(0, hw[1] - 2).flatmap(lambda x0: st.tuples(st.just(x0), st.integers(x0 + 1, hw[1]))),
        st.integers(0, hw[0] - 2).flatmap(lambda y0: st.tuples(st.just(y0), st.integers(y0 + 1, hw[0]))),
    )
)


@settings(max_examples=40)
@given(spec=boxes, seed=st.integers(0, 2**16), context=st.sampled_from([None, 1.0, 1.5, 3.0]))
def test_render_is_square_in_range_and_keeps_some_object(spec, seed: int, context: float | None) -> None:
    (height, width), (x0, x1), (y0, y1) = spec
    mask = rectangle(height, width, (x0, y0, x1, y1))
    out = render_mask(mask, context, np.random.default_rng(seed), AugmentConfig(size=32))
    assert out.shape == (32, 32) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.max() > 0.0, "crops keep at least half of the mask (or the whole frame)"


@settings(max_examples=25)
@given(spec=boxes)
def test_object_centred_render_without_randomness_fills_the_centre(spec) -> None:
    (height, width), (x0, x1), (y0, y1) = spec
    assume(x1 - x0 >= 4 and y1 - y0 >= 4)  # crops are at least 4 px wide
    out = render_mask(rectangle(height, width, (x0, y0, x1, y1)), 1.0, None, AugmentConfig(size=32))
    # context 1 crops exactly to the box: the object fills the frame
    assert out[4:-4, 4:-4].min() > 0.99


def test_context_factor_shrinks_the_object_in_the_frame() -> None:
    mask = rectangle(100, 100, (40, 40, 60, 60))
    tight = render_mask(mask, 1.0, None, AugmentConfig(size=64)).mean()
    loose = render_mask(mask, 2.0, None, AugmentConfig(size=64)).mean()
    assert tight > 0.95
    assert loose == pytest.approx(0.25, abs=0.03)


def test_soft_values_survive_the_stretch() -> None:
    mask = np.tile(np.linspace(0, 1, 300, dtype=np.float32), (200, 1))
    out = stretch(mask, 64)
    assert ((out > 0.05) & (out < 0.95)).mean() > 0.5
    assert np.all(np.diff(out[0]) >= -1e-6), "a ramp stays a ramp"


def test_flip_happens_about_half_the_time() -> None:
    mask = rectangle(40, 40, (0, 0, 10, 40))  # a bar on the left edge
    config = AugmentConfig(size=40, crop_prob=0.0)
    flips = [
        render_mask(mask, None, np.random.default_rng(s), config)[:, -1].mean() > 0.5 for s in range(200)
    ]
    assert 0.35 < np.mean(flips) < 0.65


def test_mask_box_of_empty_and_soft_masks() -> None:
    assert mask_box(np.zeros((5, 5), np.float32)) is None
    faint = np.zeros((5, 5), np.float32)
    faint[1:3, 2:4] = 0.2
    assert mask_box(faint) == (2, 1, 4, 3)


def make_mixture(seed: int = 0) -> MaskMixture:
    rng = np.random.default_rng(0)
    masks = [
        rectangle(48, 64, (int(a), int(b), int(a) + 10, int(b) + 12)) for a, b in rng.integers(0, 30, (20, 2))
    ]
    return MaskMixture(
        [ArraySource(masks), ArraySource(masks[:3], context=1.5, name="b")],
        [3, 1],
        seed=seed,
        augment=AugmentConfig(size=32),
    )


def test_batches_are_a_pure_function_of_seed_and_step() -> None:
    first, again = make_mixture(), make_mixture()
    assert torch.equal(first.batch(5, 4), again.batch(5, 4))
    assert not torch.equal(first.batch(5, 4), first.batch(6, 4))
    assert not torch.equal(first.batch(5, 4), make_mixture(seed=1).batch(5, 4))


@pytest.mark.parametrize("world_size", [2, 3])
def test_rank_shards_tile_the_global_batch(world_size: int) -> None:
    mixture = make_mixture()
    step, per_rank = 7, 2
    shards = torch.cat([mixture.batch(step, per_rank, rank, world_size) for rank in range(world_size)])
    assert torch.equal(shards, mixture.batch(step, per_rank * world_size))


def test_weights_set_the_source_mix() -> None:
    rng = np.random.default_rng(0)
    big = [rectangle(32, 32, (0, 0, 32, 32))]
    small = [rectangle(32, 32, (12, 12, 14, 14)) * 0]
    mixture = MaskMixture(
        [ArraySource(big), ArraySource(small, name="empty")],
        [3, 1],
        seed=int(rng.integers(99)),
        augment=AugmentConfig(size=8, crop_prob=0.0),
    )
    full = float((mixture.batch(0, 400).flatten(1).amax(1) > 0).float().mean())
    assert full == pytest.approx(0.75, abs=0.07)


def test_mixture_rejects_bad_weights() -> None:
    with pytest.raises(ValueError, match="positive weight"):
        MaskMixture([ArraySource([rectangle(8, 8, (0, 0, 4, 4))])], [0.0])


def test_a_source_with_augmentation_off_draws_exactly_its_validation_renders() -> None:
    masks = [rectangle(48, 64, (5 + 3 * i, 4, 30 + 2 * i, 40)) for i in range(3)]
    plain = ArraySource(masks, name="plain")
    plain.augment = False
    config = AugmentConfig(size=32)
    mixture = MaskMixture([plain], seed=3, augment=config)
    renders = {render_mask(m, None, None, config).tobytes() for m in masks}
    assert all(mixture.sample(n).tobytes() in renders for n in range(40))
    augmented = MaskMixture([ArraySource(masks)], seed=3, augment=config)
    assert any(augmented.sample(n).tobytes() not in renders for n in range(40))
