"""`shapes:`, a procedural referring-segmentation set generated on the fly from a seed.

A scene is a few coloured shapes on a textured background. Every shape has a distinct (colour, kind) pair, so
"the red circle" always names exactly one shape; shorter expressions (by colour, by kind, by size, by position)
are used only where they are unambiguous in that scene. Absent-object questions name a (colour, kind) pair that
is not in the scene. Everything is a pure function of `(seed, index)`: item i is the same on every machine and
every epoch, which makes the set a reproducible smoke test and a CPU learning test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 190),
    "white": (245, 245, 245),
}
KINDS = ("circle", "square", "triangle", "ring")


@dataclass(frozen=True)
class Shape:
    kind: str
    color: str
    center: tuple[float, float]  # (x, y) in pixels
    radius: float
    mask: np.ndarray  # bool [H, W]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2), exclusive end, of the mask."""
        ys, xs = np.nonzero(self.mask)
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass(frozen=True)
class Reference:
    """An expression and the shape it names (None: the named shape is absent from the scene)."""

    expression: str
    target: int | None


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # uint8 [H, W, 3]
    shapes: tuple[Shape, ...]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.image.shape[0], self.image.shape[1]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A low-contrast texture: a base tone with noise, and stripes or a checkerboard half of the time."""
    base = rng.integers(60, 170, size=3)
    image = np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    image = image + rng.normal(0, 12, (size, size, 3)).astype(np.float32)
    pattern = rng.integers(0, 3)
    yy, xx = np.mgrid[0:size, 0:size]
    if pattern == 1:
        period = rng.integers(6, 20)
        angle = rng.uniform(0, math.pi)
        stripes = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
        image += 18 * stripes[..., None]
    elif pattern == 2:
        cell = rng.integers(8, 24)
        image += 15 * (((xx // cell) + (yy // cell)) % 2 * 2 - 1)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw(kind: str, center: tuple[float, float], radius: float, size: int, angle: float) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    x, y = center
    if kind == "circle":
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    elif kind == "ring":
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
        inner = radius * 0.55
        draw.ellipse((x - inner, y - inner, x + inner, y + inner), fill=0)
    else:
        corners = 4 if kind == "square" else 3
        points = [
            (
                x + radius * math.cos(angle + 2 * math.pi * k / corners),
                y + radius * math.sin(angle + 2 * math.pi * k / corners),
            )
            for k in range(corners)
        ]
        draw.polygon(points, fill=255)
    return np.asarray(canvas) > 127


def make_scene(seed: int, index: int, size: int = 112, max_shapes: int = 3) -> Scene:
    """Scene `index` of the set `seed`: 1..max_shapes shapes with distinct (colour, kind), little overlap."""
    rng = np.random.default_rng([seed, index])
    image = _background(rng, size)
    count = int(rng.integers(1, max_shapes + 1))
    pairs = [(c, k) for c in COLORS for k in KINDS]
    chosen = rng.choice(len(pairs), size=count, replace=False)
    shapes: list[Shape] = []
    occupied = np.zeros((size, size), dtype=bool)
    for pick in chosen:
        color, kind = pairs[int(pick)]
        for _ in range(30):
            radius = float(rng.uniform(0.08, 0.22) * size)
            center = (float(rng.uniform(radius, size - radius)), float(rng.uniform(radius, size - radius)))
            mask = _draw(kind, center, radius, size, float(rng.uniform(0, 2 * math.pi)))
            if mask.sum() > 20 and (mask & occupied).sum() < 0.05 * mask.sum():
                break
        visible = mask & ~occupied
        if visible.sum() < 10:
            continue
        occupied |= visible
        shapes.append(Shape(kind, color, center, radius, visible))
    image = image.copy()
    for shape in shapes:
        image[shape.mask] = COLORS[shape.color]
    return Scene(image=image, shapes=tuple(shapes))


def references(scene: Scene, rng: np.random.Generator, absent: bool = True) -> list[Reference]:
    """Every unambiguous expression for every shape (and, when `absent`, one for a missing shape)."""
    shapes = scene.shapes
    found: list[Reference] = []
    for i, shape in enumerate(shapes):
        same_color = [s for s in shapes if s.color == shape.color]
        same_kind = [s for s in shapes if s.kind == shape.kind]
        found.append(Reference(f"the {shape.color} {shape.kind}", i))
        if len(same_color) == 1:
            found.append(Reference(f"the {shape.color} shape", i))
        if len(same_kind) == 1:
            found.append(Reference(f"the {shape.kind}", i))
        if len(shapes) > 1:
            areas = sorted(s.area for s in shapes)
            if shape.area == areas[-1] and areas[-1] > 1.5 * areas[-2]:
                found.append(Reference("the largest shape", i))
            if shape.area == areas[0] and areas[1] > 1.5 * areas[0]:
                found.append(Reference("the smallest shape", i))
            xs = sorted(s.center[0] for s in shapes)
            gap = 0.1 * scene.size[1]
            if shape.center[0] == xs[0] and xs[1] - xs[0] > gap:
                found.append(Reference("the leftmost shape", i))
            if shape.center[0] == xs[-1] and xs[-1] - xs[-2] > gap:
                found.append(Reference("the rightmost shape", i))
    if absent:
        present = {(s.color, s.kind) for s in shapes}
        missing = [(c, k) for c in COLORS for k in KINDS if (c, k) not in present]
        color, kind = missing[int(rng.integers(len(missing)))]
        found.append(Reference(f"the {color} {kind}", None))
    return found
