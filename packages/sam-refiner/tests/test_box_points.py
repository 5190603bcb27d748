"""Prompts built from a coarse mask for standard SAM weights: box, positive and negative points."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from himtok_sam_refiner import BoxPointsSettings, mask_box, negative_points, positive_points
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

SETTINGS = BoxPointsSettings()


@st.composite
def masks(draw: st.DrawFn) -> np.ndarray:
    """Unions of 1-3 rectangles and disks on a 24x24 grid (possibly touching the border)."""
    mask = np.zeros((24, 24), dtype=bool)
    rows, cols = np.indices(mask.shape)
    for _ in range(draw(st.integers(1, 3))):
        r, c = draw(st.integers(0, 23)), draw(st.integers(0, 23))
        size = draw(st.integers(1, 10))
        if draw(st.booleans()):
            mask |= (rows - r) ** 2 + (cols - c) ** 2 < size**2
        else:
            mask[r : r + size, c : c + draw(st.integers(1, 10))] = True
    return mask


@settings(max_examples=40)
@given(mask=masks(), valid_rows=st.integers(12, 24))
def test_points_fall_on_the_right_side(mask: np.ndarray, valid_rows: int) -> None:
    valid = np.zeros_like(mask)
    valid[:valid_rows] = True
    mask = mask & valid
    positives = positive_points(mask, SETTINGS)
    if not mask.any():
        assert len(positives) == 0
        return
    assert 1 <= len(positives) <= SETTINGS.max_positive
    assert mask[tuple(positives.T)].all()
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    assert depth[tuple(positives[0])] == depth.max()  # the deepest point comes first
    for i in range(len(positives)):  # inscribed disks do not overlap
        for j in range(i):
            gap = np.hypot(*(positives[i] - positives[j]))
            assert gap >= depth[tuple(positives[i])] + depth[tuple(positives[j])] - 1e-9
    box = mask_box(mask)
    assert box is not None
    negatives = negative_points(mask, valid, box, positives, SETTINGS)
    assert len(negatives) <= SETTINGS.max_negative
    if len(negatives):
        assert not mask[tuple(negatives.T)].any() and valid[tuple(negatives.T)].all()
        band = max(2.0, SETTINGS.negative_band * max(box[2] - box[0] + 1, box[3] - box[1] + 1))
        distance = ndimage.distance_transform_edt(~mask)[tuple(negatives.T)]
        assert ((distance >= band) & (distance <= 2 * band)).all()
        assert len({tuple(p) for p in negatives}) == len(negatives)


@settings(max_examples=25)
@given(mask=masks())
def test_box_is_tight(mask: np.ndarray) -> None:
    box = mask_box(mask)
    if box is None:
        assert not mask.any()
        return
    x0, y0, x1, y1 = box.astype(int)
    assert mask[y0 : y1 + 1, x0 : x1 + 1].sum() == mask.sum()
    assert mask[y0].any() and mask[y1].any() and mask[:, x0].any() and mask[:, x1].any()


def test_two_blobs_get_a_point_each(synth: SimpleNamespace) -> None:
    mask = synth.disk((40, 60), (20, 12), 8) | synth.disk((40, 60), (20, 45), 7)
    positives = positive_points(mask, SETTINGS)
    hits = {int(p[1] > 30) for p in positives}
    assert hits == {0, 1}
    np.testing.assert_array_equal(positives[0], [20, 12])  # the larger disk's centre first


def test_thin_sliver_gets_no_point(synth: SimpleNamespace) -> None:
    mask = synth.disk((40, 60), (20, 15), 10)
    mask[20, 30:58] = True  # a one-pixel line: depth 1, far below 0.3 x the disk's 10
    positives = positive_points(mask, SETTINGS)
    assert (positives[:, 1] < 26).all()


def test_concavity_gets_the_negative_point() -> None:
    """A U shape: the box covers the gap, so the negative point goes into the gap."""
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:35, 5:12] = True
    mask[5:35, 28:35] = True
    mask[28:35, 5:35] = True
    box = mask_box(mask)
    negatives = negative_points(mask, np.ones_like(mask), box, positive_points(mask, SETTINGS), SETTINGS)
    assert len(negatives) >= 1
    r, c = negatives[0]
    assert 5 <= r < 28 and 12 <= c < 28


def test_full_and_empty_masks() -> None:
    full = np.ones((16, 16), dtype=bool)
    assert len(positive_points(full, SETTINGS)) == 1
    assert len(negative_points(full, full, mask_box(full), positive_points(full, SETTINGS), SETTINGS)) == 0
    empty = np.zeros((16, 16), dtype=bool)
    assert mask_box(empty) is None and len(positive_points(empty, SETTINGS)) == 0
