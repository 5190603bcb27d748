"""A folder of mask PNGs (binary or soft), searched recursively."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from himtok_apps.data.errors import MaskReadError, SkipCounter
from himtok_apps.data.source import MaskSource, list_pngs, read_mask_png


class PngDirSource(MaskSource):
    """Every ``*.png`` under ``folder``. Files are read per draw; with ``min_area`` > 0 they are scanned once
    at start-up to drop small masks (unreadable files found then are skipped and counted)."""

    def __init__(
        self,
        folder: Path,
        *,
        min_area: float = 0.0,
        context: float | None = None,
        limit: int | None = None,
        skips: SkipCounter | None = None,
        name: str | None = None,
    ) -> None:
        self.root = Path(folder)
        self.name = name or f"pngdir:{self.root.name}"
        self.context = context
        paths = list_pngs(self.root)
        if min_area > 0:
            skips = skips if skips is not None else SkipCounter()
            kept: list[Path] = []
            for path in paths:
                if limit is not None and len(kept) >= limit:
                    break
                try:
                    mask = read_mask_png(path)
                except MaskReadError as error:
                    skips.add(self.name, self._relative(path), str(error))
                    continue
                if float((mask > 0.5).mean()) >= min_area:
                    kept.append(path)
            paths = kept
        self.paths = paths[:limit] if limit is not None else paths

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def __len__(self) -> int:
        return len(self.paths)

    def item_name(self, index: int) -> str:
        return self._relative(self.paths[index])

    def load(self, index: int) -> np.ndarray:
        return read_mask_png(self.paths[index])
