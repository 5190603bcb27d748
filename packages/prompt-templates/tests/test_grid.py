import re

import pytest
from himtok_prompt_templates import (
    GRID_MAX,
    box_to_grid,
    format_box,
    format_grid_box,
    format_points,
    grid_to_box,
    grid_to_point,
    point_to_grid,
)
from hypothesis import given
from hypothesis import strategies as st

sizes = st.floats(1.0, 5000.0, allow_nan=False)


@st.composite
def image_and_box(draw):
    width, height = draw(sizes), draw(sizes)
    xs = sorted(draw(st.floats(0.0, width)) for _ in range(2))
    ys = sorted(draw(st.floats(0.0, height)) for _ in range(2))
    return width, height, (xs[0], ys[0], xs[1], ys[1])


@given(image_and_box())
def test_pixel_grid_pixel_round_trip_within_one_cell(case):
    width, height, box = case
    grid = box_to_grid(box, width, height)
    assert all(isinstance(v, int) and 0 <= v <= GRID_MAX for v in grid)
    back = grid_to_box(grid, width, height)
    cells = (width / GRID_MAX, height / GRID_MAX, width / GRID_MAX, height / GRID_MAX)
    for original, restored, cell in zip(box, back, cells, strict=True):
        assert abs(original - restored) <= cell


@given(sizes, sizes, st.lists(st.integers(0, GRID_MAX), min_size=4, max_size=4))
def test_grid_pixel_grid_is_exact(width, height, values):
    grid = (
        min(values[0], values[2]),
        min(values[1], values[3]),
        max(values[0], values[2]),
        max(values[1], values[3]),
    )
    assert box_to_grid(grid_to_box(grid, width, height), width, height) == grid


@given(sizes, sizes, st.integers(0, GRID_MAX), st.integers(0, GRID_MAX))
def test_point_round_trip(width, height, gx, gy):
    assert point_to_grid(grid_to_point((gx, gy), width, height), width, height) == (gx, gy)


def test_rounding_convention_matches_official_eval_scaling():
    # official REC eval: pixel = value / 999 * size
    assert grid_to_box((0, 0, 999, 999), 640, 480) == (0.0, 0.0, 640.0, 480.0)
    assert box_to_grid((0, 0, 640, 480), 640, 480) == (0, 0, 999, 999)
    # half-cell rounds up
    assert point_to_grid((0.5 * 10 / 999, 0), 10, 10) == (1, 0)


def test_outside_image_is_clamped():
    assert box_to_grid((-20, -1, 700, 500), 640, 480) == (0, 0, 999, 999)


@pytest.mark.parametrize(
    ("box", "width", "height", "message"),
    [
        ((0, 0, 1, 1), 0, 10, "positive"),
        ((0, 0, 1, 1), 10, float("nan"), "finite"),
        ((5, 0, 1, 1), 10, 10, "out of order"),
        ((0, 0, 1), 10, 10, "4 numbers"),
        ("0 0 1 1", 10, 10, "string"),
        ((0, 0, "1", 1), 10, 10, "number"),
        ((0, 0, 1, float("inf")), 10, 10, "finite"),
    ],
)
def test_bad_boxes_raise(box, width, height, message):
    with pytest.raises(ValueError, match=message):
        box_to_grid(box, width, height)


def test_grid_values_are_checked():
    with pytest.raises(ValueError, match="outside the grid"):
        grid_to_box((0, 0, 1000, 5), 10, 10)
    with pytest.raises(ValueError, match="out of order"):
        format_grid_box((10, 0, 5, 5))


@given(image_and_box())
def test_format_box_layout(case):
    width, height, box = case
    text = format_box(box, width, height)
    match = re.fullmatch(r"<box>\[(\d+), (\d+), (\d+), (\d+)\]</box>", text)
    assert match is not None
    assert tuple(int(g) for g in match.groups()) == box_to_grid(box, width, height)


def test_format_points():
    assert format_points([(0, 0), (10, 5)], 10, 10) == "<point>[0, 0]</point>, <point>[999, 500]</point>"
    with pytest.raises(ValueError, match="at least one"):
        format_points([], 10, 10)
