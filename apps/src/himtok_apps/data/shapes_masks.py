"""`shapes:` as a stage-1 mask source: every shape of the procedural scenes, one mask per item.

Item ``i`` is shape ``i % 3`` of scene ``i // 3`` (the next shape of the scene when it has fewer), so the masks
are those the stage-2 `shapes:` conversations refer to, at the same image size.
"""

from __future__ import annotations

import numpy as np

from himtok_apps.data.shapes import SceneConfig, make_scene
from himtok_apps.data.source import MaskSource

SHAPES_PER_SCENE = 3


class ShapesMaskSource(MaskSource):
    def __init__(
        self,
        seed: int = 0,
        size: int = 112,
        items: int = 200_000,
        context: float | None = None,
        name: str = "shapes",
    ) -> None:
        if items < 1:
            raise ValueError(f"shapes: items must be at least 1, got {items}")
        self.seed = seed
        self.config = SceneConfig(size=size)
        self.items = items
        self.context = context
        self.name = name

    def __len__(self) -> int:
        return self.items

    def item_name(self, index: int) -> str:
        return f"scene {index // SHAPES_PER_SCENE} shape {index % SHAPES_PER_SCENE}"

    def load(self, index: int) -> np.ndarray:
        scene = make_scene(self.seed, index // SHAPES_PER_SCENE, self.config)
        shape = scene.shapes[(index % SHAPES_PER_SCENE) % len(scene.shapes)]
        return shape.mask.astype(np.float32)
