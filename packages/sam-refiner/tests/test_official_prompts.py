"""The official point prompt (probability-weighted centroid, the official foreground rule) and dense prompt."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from himtok_sam_refiner import official_mask_logits, official_point_prompts
from hypothesis import given, settings
from hypothesis import strategies as st


def prompts(*masks: np.ndarray) -> tuple[np.ndarray, list[int]]:
    points, labels = official_point_prompts(torch.from_numpy(np.stack(masks).astype(np.float32)), scale=4.0)
    return points.numpy(), labels.tolist()


def test_binary_disk_inside_is_foreground(synth: SimpleNamespace) -> None:
    points, labels = prompts(synth.disk((64, 64), (20, 40), 8))
    assert labels == [1]
    np.testing.assert_allclose(points[0], [40 * 4, 20 * 4], atol=1e-3)


def test_soft_blob_touching_the_border_is_background(synth: SimpleNamespace) -> None:
    """The known bug: almost every pixel of a soft map counts as perimeter, so compactness ~ 0."""
    blob = synth.soft_blob(64, (32, 5), 6.0)
    assert blob[:, 0].max() > 0
    _, labels = prompts(blob)
    assert labels == [0]


def test_soft_blob_with_a_zero_border_is_foreground(synth: SimpleNamespace) -> None:
    blob = synth.soft_blob(64, (32, 32), 4.0)
    blob[[0, -1], :] = 0
    blob[:, [0, -1]] = 0
    _, labels = prompts(blob)
    assert labels == [1]


def test_empty_and_full_masks() -> None:
    points, labels = prompts(np.zeros((64, 64)), np.ones((64, 64)))
    np.testing.assert_allclose(points[0], [128, 128])  # the centre of the 64 grid, x4
    # a full mask touches the border and its perimeter is zero, so its compactness counts as 0: background
    np.testing.assert_allclose(points[1], [31.5 * 4, 31.5 * 4], atol=1e-3)
    assert labels == [1, 0]


def test_binary_line_on_the_border_depends_on_its_length() -> None:
    """Compactness of a one-pixel line of length L is about 4*pi*L / (L + 4)^2: below 0.1 from L ~ 118."""
    short, long = np.zeros((256, 256)), np.zeros((256, 256))
    short[10:50, 0] = 1  # 4*pi*40 / 44^2 = 0.26
    long[10:210, 0] = 1  # 4*pi*200 / 204^2 = 0.06
    _, labels = prompts(short, long)
    assert labels == [1, 0]


@settings(max_examples=25)
@given(
    rows=st.tuples(st.integers(1, 30), st.integers(1, 30)),
    cols=st.tuples(st.integers(1, 30), st.integers(1, 30)),
    weight=st.floats(0.05, 1.0),
)
def test_masks_off_the_border_are_foreground_at_their_centroid(
    rows: tuple[int, int], cols: tuple[int, int], weight: float
) -> None:
    """Anything with an all-zero border is labelled foreground, and the point is the weighted centroid x4."""
    mask = np.zeros((32, 32), dtype=np.float32)
    top, bottom = sorted(rows)
    left, right = sorted(cols)
    mask[top : bottom + 1, left : right + 1] = weight
    points, labels = prompts(mask)
    assert labels == [1]
    np.testing.assert_allclose(points[0], [2 * (left + right), 2 * (top + bottom)], atol=1e-3)


def test_dense_prompt_is_linear_in_probability() -> None:
    p = torch.tensor([0.0, 0.25, 0.5, 1.0])
    torch.testing.assert_close(official_mask_logits(p), torch.tensor([-6.0, -3.0, 0.0, 6.0]))
