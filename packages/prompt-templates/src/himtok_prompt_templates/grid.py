"""Boxes and points on the 0..999 grid used in the text, relative to the image width and height.

Convention (matches the official REC evaluation, which divides by 999 and scales by (w, h)):

* pixel -> grid: ``g = floor(x / width * 999 + 0.5)`` (round half up), clamped to ``[0, 999]``;
  a coordinate outside the image is clamped to its border first.
* grid -> pixel: ``x = g / 999 * width``.

So ``grid_to_box(box_to_grid(b))`` is within half a grid cell (``width / 999 / 2`` pixels) of any box inside the
image; one grid cell is the documented bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from himtok_prompt_templates.tokens import BOX_END, BOX_START, POINT_END, POINT_START

GRID_MAX = 999

GridBox = tuple[int, int, int, int]
GridPoint = tuple[int, int]


def _finite(value: object, what: str) -> float:
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{what} must be a number, got {value!r}") from err
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {number}")
    return number


def _image_size(width: object, height: object) -> tuple[float, float]:
    w = _finite(width, "width")
    h = _finite(height, "height")
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got width={w}, height={h}")
    return w, h


def _numbers(values: object, count: int, what: str) -> list[float]:
    if isinstance(values, str | bytes):
        raise ValueError(f"{what} must be a sequence of {count} numbers, got a string")
    try:
        items = list(values)  # type: ignore[call-overload]
    except TypeError as err:
        raise ValueError(f"{what} must be a sequence of {count} numbers, got {values!r}") from err
    if len(items) != count:
        raise ValueError(f"{what} must have {count} numbers, got {len(items)}")
    return [_finite(v, f"{what}[{i}]") for i, v in enumerate(items)]


def _to_grid(value: float, size: float) -> int:
    clamped = min(max(value, 0.0), size)
    return min(GRID_MAX, max(0, math.floor(clamped / size * GRID_MAX + 0.5)))


def _check_grid(values: list[float], what: str) -> list[int]:
    out = []
    for i, v in enumerate(values):
        if not 0 <= v <= GRID_MAX:
            raise ValueError(f"{what}[{i}] = {v} is outside the grid [0, {GRID_MAX}]")
        out.append(math.floor(v + 0.5))
    return out


def box_to_grid(box_xyxy_pixels: Sequence[float], width: float, height: float) -> GridBox:
    """Pixel box ``(x1, y1, x2, y2)`` -> integer grid box; needs ``x1 <= x2`` and ``y1 <= y2``."""
    w, h = _image_size(width, height)
    x1, y1, x2, y2 = _numbers(box_xyxy_pixels, 4, "box")
    if x2 < x1 or y2 < y1:
        raise ValueError(f"box corners are out of order (need x1 <= x2 and y1 <= y2): {(x1, y1, x2, y2)}")
    return (_to_grid(x1, w), _to_grid(y1, h), _to_grid(x2, w), _to_grid(y2, h))


def grid_to_box(grid_box: Sequence[float], width: float, height: float) -> tuple[float, float, float, float]:
    """Grid box (values in ``[0, 999]``) -> pixel box ``(x1, y1, x2, y2)`` as floats."""
    w, h = _image_size(width, height)
    g = _check_grid(_numbers(grid_box, 4, "grid box"), "grid box")
    return (g[0] / GRID_MAX * w, g[1] / GRID_MAX * h, g[2] / GRID_MAX * w, g[3] / GRID_MAX * h)


def point_to_grid(point_xy_pixels: Sequence[float], width: float, height: float) -> GridPoint:
    """Pixel point ``(x, y)`` -> integer grid point (same rounding as boxes)."""
    w, h = _image_size(width, height)
    x, y = _numbers(point_xy_pixels, 2, "point")
    return (_to_grid(x, w), _to_grid(y, h))


def grid_to_point(grid_point: Sequence[float], width: float, height: float) -> tuple[float, float]:
    """Grid point (values in ``[0, 999]``) -> pixel point ``(x, y)`` as floats."""
    w, h = _image_size(width, height)
    gx, gy = _check_grid(_numbers(grid_point, 2, "grid point"), "grid point")
    return (gx / GRID_MAX * w, gy / GRID_MAX * h)


def format_grid_box(grid_box: Sequence[int]) -> str:
    """``<box>[x1, y1, x2, y2]</box>`` from a grid box that is already on ``[0, 999]``."""
    x1, y1, x2, y2 = _check_grid(_numbers(grid_box, 4, "grid box"), "grid box")
    if x2 < x1 or y2 < y1:
        raise ValueError(f"grid box corners are out of order: {(x1, y1, x2, y2)}")
    return f"{BOX_START}[{x1}, {y1}, {x2}, {y2}]{BOX_END}"


def format_box(box_xyxy_pixels: Sequence[float], width: float, height: float) -> str:
    """``<box>[x1, y1, x2, y2]</box>`` for a pixel box, on the 0..999 grid of a ``width`` x ``height`` image."""
    return format_grid_box(box_to_grid(box_xyxy_pixels, width, height))


def format_grid_point(grid_point: Sequence[int]) -> str:
    """``<point>[x, y]</point>`` from a grid point already on ``[0, 999]``."""
    x, y = _check_grid(_numbers(grid_point, 2, "grid point"), "grid point")
    return f"{POINT_START}[{x}, {y}]{POINT_END}"


def format_points(points_xy_pixels: Sequence[Sequence[float]], width: float, height: float) -> str:
    """One ``<point>[x, y]</point>`` per pixel point, joined by ", "; at least one point."""
    points = list(points_xy_pixels)
    if not points:
        raise ValueError("points must contain at least one (x, y) point")
    return ", ".join(format_grid_point(point_to_grid(p, width, height)) for p in points)
