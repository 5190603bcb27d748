"""`shapes:`, a procedural referring-segmentation set generated on the fly from a seed.

A scene is a few flat, saturated shapes on a mildly textured grey background; shapes never overlap and every
shape has its own (colour, kind) pair, so "the red circle" always names exactly one shape. ``references(scene)``
lists every expression that names exactly one shape of the scene, by colour and kind, by size ("the largest
square"), by position ("the leftmost shape") or by relation to another shape ("the blue shape left of the green
triangle"); ``absent_references(scene, config)`` lists names that match nothing in it. Superlatives and
relations are generated only with a clear visual margin, so the strict reading of an expression (the argmax;
every shape on that side) is also the only one.

Everything is a pure function of ``(seed, index)``: scene ``index`` of set ``seed`` is the same on every machine
and every epoch. The default configuration is meant to be learnable by a tiny model on CPU: 1-3 shapes of
15-40 % of the side, four colours, three kinds, at 112 x 112 pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (35, 75, 215),
    "yellow": (230, 200, 30),
}
#: Further colours for harder configurations (``colors=`` option); the default palette is ``COLORS``.
PALETTE: dict[str, tuple[int, int, int]] = {
    **COLORS,
    "purple": (140, 55, 185),
    "orange": (240, 125, 25),
    "cyan": (30, 190, 205),
    "white": (245, 245, 245),
}
KINDS = ("circle", "square", "triangle")
ALL_KINDS = (*KINDS, "ring")

#: Size and position comparisons need this margin to be generated: the largest is at least 1.3x the next,
#: and centres differ by at least this fraction of the side.
AREA_RATIO = 1.3
POSITION_GAP = 0.12

SUPERLATIVES = ("largest", "smallest")
EXTREMES = ("leftmost", "rightmost", "topmost", "bottommost")
RELATIONS = ("left of", "right of", "above", "below")
FORMS = ("color_kind", "color", "kind", "superlative", "extreme", "relation")


@dataclass(frozen=True)
class SceneConfig:
    """What scenes look like. ``min_extent``/``max_extent``: a shape's width as a fraction of the side."""

    size: int = 112
    min_shapes: int = 1
    max_shapes: int = 3
    min_extent: float = 0.15
    max_extent: float = 0.4
    colors: tuple[str, ...] = tuple(COLORS)
    kinds: tuple[str, ...] = KINDS
    noise: float = 6.0

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ValueError(f"scene size must be at least 32 pixels, got {self.size}")
        unknown = [c for c in self.colors if c not in PALETTE] + [k for k in self.kinds if k not in ALL_KINDS]
        if unknown or not self.colors or not self.kinds or len(set(self.colors)) != len(self.colors):
            raise ValueError(
                f"colors must be distinct names from {list(PALETTE)} and kinds from {list(ALL_KINDS)}; "
                f"got colors={list(self.colors)}, kinds={list(self.kinds)}"
            )
        pairs = len(self.colors) * len(self.kinds)
        if not 1 <= self.min_shapes <= self.max_shapes <= min(pairs, 6):
            raise ValueError(
                f"need 1 <= min_shapes <= max_shapes <= {min(pairs, 6)}, got {self.min_shapes}..{self.max_shapes}"
            )
        if not 0.05 <= self.min_extent <= self.max_extent <= 0.6:
            raise ValueError(
                f"need 0.05 <= min_extent <= max_extent <= 0.6, got {self.min_extent}..{self.max_extent}"
            )
        if not 0.0 <= self.noise <= 40.0:
            raise ValueError(f"noise is a pixel standard deviation in [0, 40], got {self.noise}")


@dataclass(frozen=True, eq=False)
class Shape:
    kind: str
    color: str
    center: tuple[float, float]  # (x, y): centroid of the mask, in pixels
    mask: np.ndarray  # bool [H, W]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2), exclusive end, of the mask."""
        ys, xs = np.nonzero(self.mask)
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def name(self) -> str:
        return f"{self.color} {self.kind}"


@dataclass(frozen=True)
class Reference:
    """An expression and the shape it names (``target`` None: nothing in the scene matches it).

    ``form`` is one of ``FORMS`` (``color_kind``, ``color`` or ``kind`` for absent names); ``anchor`` is the
    other shape of a relation.
    """

    expression: str
    target: int | None
    form: str
    anchor: int | None = None


@dataclass(frozen=True, eq=False)
class Scene:
    image: np.ndarray  # uint8 [H, W, 3]
    shapes: tuple[Shape, ...]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.image.shape[0], self.image.shape[1]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A grey tone with a slight tint and a faint pattern (none, stripes, checkerboard or gradient)."""
    grey = rng.uniform(70, 185)
    tint = rng.uniform(-10, 10, size=3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    pattern = int(rng.integers(0, 4))
    amplitude = rng.uniform(5, 14)
    if pattern == 1:
        period, angle = rng.uniform(6, 20), rng.uniform(0, math.pi)
        texture = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    elif pattern == 2:
        cell = int(rng.integers(6, 24))
        texture = (((xx // cell) + (yy // cell)) % 2 * 2 - 1).astype(np.float32)
    elif pattern == 3:
        angle = rng.uniform(0, 2 * math.pi)
        texture = ((xx * math.cos(angle) + yy * math.sin(angle)) / size).astype(np.float32)
    else:
        texture = np.zeros((size, size), dtype=np.float32)
    return (grey + tint + amplitude * texture[..., None]).astype(np.float32)


def _draw(kind: str, center: tuple[float, float], radius: float, angle: float, size: int) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    x, y = center
    if kind in ("circle", "ring"):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
        if kind == "ring":
            inner = radius * 0.5
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


# Circumradius per unit of extent: a square of side e has circumradius e/sqrt(2); triangles get a little more
# than side e (0.7 e, side 1.2 e) so that their area is not much below that of the other kinds.
_RADIUS_PER_EXTENT = {"circle": 0.5, "ring": 0.5, "square": 1 / math.sqrt(2), "triangle": 0.7}


def make_scene(seed: int, index: int, config: SceneConfig | None = None) -> Scene:
    """Scene ``index`` of the set ``seed``: min..max_shapes non-overlapping shapes with distinct (colour, kind)."""
    config = config if config is not None else SceneConfig()
    size = config.size
    rng = np.random.default_rng([seed, index])
    image = _background(rng, size)
    count = int(rng.integers(config.min_shapes, config.max_shapes + 1))
    pairs = [(c, k) for c in config.colors for k in config.kinds]
    chosen = rng.choice(len(pairs), size=count, replace=False)
    shapes: list[Shape] = []
    occupied = np.zeros((size, size), dtype=bool)
    for pick in chosen:
        color, kind = pairs[int(pick)]
        for _ in range(40):
            extent = rng.uniform(config.min_extent, config.max_extent) * size
            radius = extent * _RADIUS_PER_EXTENT[kind]
            center = (
                float(rng.uniform(radius + 1, size - radius - 1)),
                float(rng.uniform(radius + 1, size - radius - 1)),
            )
            angle = float(rng.uniform(0, 2 * math.pi))
            mask = _draw(kind, center, radius, angle, size)
            halo = _draw(kind, center, radius + 3, angle, size)  # keeps a visible gap between shapes
            if mask.sum() >= 20 and not (halo & occupied).any():
                break
        else:
            continue  # no room left: the scene has fewer shapes
        occupied |= mask
        ys, xs = np.nonzero(mask)
        shapes.append(Shape(kind, color, (float(xs.mean()), float(ys.mean())), mask))
    for shape in shapes:
        shade = np.array(PALETTE[shape.color], dtype=np.float32) + rng.uniform(-12, 12)
        image[shape.mask] = shade
    image = image + rng.normal(0.0, config.noise, image.shape).astype(np.float32)
    return Scene(image=np.clip(image, 0, 255).astype(np.uint8), shapes=tuple(shapes))


def _noun(color: str | None, kind: str | None) -> str:
    return f"{color + ' ' if color else ''}{kind or 'shape'}"


def _matching(shapes: tuple[Shape, ...], color: str | None, kind: str | None) -> list[int]:
    return [
        i
        for i, s in enumerate(shapes)
        if (color is None or s.color == color) and (kind is None or s.kind == kind)
    ]


_AXIS: dict[str, tuple[int, int]] = {  # extreme -> (axis of center, sign: +1 smallest first)
    "leftmost": (0, 1),
    "rightmost": (0, -1),
    "topmost": (1, 1),
    "bottommost": (1, -1),
}
_SIDE: dict[str, tuple[int, int]] = {  # relation -> (axis, sign): a is on that side of b when sign*(a-b) < 0
    "left of": (0, 1),
    "right of": (0, -1),
    "above": (1, 1),
    "below": (1, -1),
}


def references(scene: Scene) -> list[Reference]:
    """Every expression that names exactly one shape of ``scene``, with a clear margin where it compares."""
    shapes = scene.shapes
    gap = POSITION_GAP * scene.size[1]
    colors = sorted({s.color for s in shapes})
    kinds = sorted({s.kind for s in shapes})
    nouns = [(c, k) for c in [*colors, None] for k in [*kinds, None]]
    found: list[Reference] = []
    for color, kind in nouns:
        group = _matching(shapes, color, kind)
        noun = _noun(color, kind)
        if len(group) == 1 and (color or kind):
            form = "color_kind" if color and kind else ("color" if color else "kind")
            found.append(Reference(f"the {noun}", group[0], form))
        if len(group) < 2:
            continue
        areas = sorted((shapes[i].area, i) for i in group)
        if areas[-1][0] >= AREA_RATIO * areas[-2][0]:
            found.append(Reference(f"the largest {noun}", areas[-1][1], "superlative"))
        if areas[1][0] >= AREA_RATIO * areas[0][0]:
            found.append(Reference(f"the smallest {noun}", areas[0][1], "superlative"))
        for word, (axis, sign) in _AXIS.items():
            ordered = sorted(group, key=lambda i: sign * shapes[i].center[axis])
            first, second = ordered[0], ordered[1]
            if abs(shapes[first].center[axis] - shapes[second].center[axis]) >= gap:
                found.append(Reference(f"the {word} {noun}", first, "extreme"))
    for anchor, shape in enumerate(shapes):
        for color, kind in nouns:
            group = [i for i in _matching(shapes, color, kind) if i != anchor]
            if not group or (len(group) < 2 and (color or kind)):
                continue  # a relation is only worth saying for "shape" or a noun that is ambiguous alone
            for word, (axis, sign) in _SIDE.items():
                offsets = [sign * (shapes[i].center[axis] - shape.center[axis]) for i in group]
                clear = [i for i, d in zip(group, offsets, strict=True) if d <= -gap]
                borderline = [i for i, d in zip(group, offsets, strict=True) if -gap < d < gap]
                if len(clear) == 1 and not borderline:
                    text = f"the {_noun(color, kind)} {word} the {shape.name}"
                    found.append(Reference(text, clear[0], "relation", anchor))
    return found


def absent_references(scene: Scene, config: SceneConfig | None = None) -> list[Reference]:
    """Names built like the present ones (colour and kind, colour, kind) that match no shape of the scene."""
    config = config if config is not None else SceneConfig()
    shapes = scene.shapes
    found = [
        Reference(f"the {c} {k}", None, "color_kind")
        for c in config.colors
        for k in config.kinds
        if not _matching(shapes, c, k)
    ]
    found += [
        Reference(f"the {c} shape", None, "color") for c in config.colors if not _matching(shapes, c, None)
    ]
    found += [Reference(f"the {k}", None, "kind") for k in config.kinds if not _matching(shapes, None, k)]
    return found
