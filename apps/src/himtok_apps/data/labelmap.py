"""Label-map folders (one class index per pixel): each class present in a map is one mask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from himtok_apps.data.errors import MaskReadError, SkipCounter
from himtok_apps.data.source import MaskSource, list_pngs, read_png


def _read_labels(path: Path) -> np.ndarray:
    image = read_png(path)
    if image.mode not in ("L", "P", "I", "I;16", "1"):
        raise MaskReadError(f"{path.name}: label maps must be single-channel, got mode {image.mode}")
    return np.asarray(image)


def find_classes_json(folder: Path) -> Path | None:
    """``classes.json`` in the folder or its parent (CamVid keeps it above train/val/test)."""
    for candidate in (folder / "classes.json", folder.parent / "classes.json"):
        if candidate.is_file():
            return candidate
    return None


def read_classes(path: Path) -> dict[int, str]:
    try:
        raw = json.loads(path.read_text())
        if isinstance(raw, list):
            return {i: str(name) for i, name in enumerate(raw)}
        return {int(key): str(name) for key, name in raw.items()}
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"{path}: classes JSON must map label values to names ({error})") from None


class LabelMapSource(MaskSource):
    """Masks ``labels == value`` for every (file, class value) pair present.

    The folder is scanned once at start-up (a ``np.bincount`` per file) to list the pairs; unreadable files
    are skipped and counted then. With a classes JSON (explicit, or ``classes.json`` beside or above the
    folder) only its values are used; ``ignore`` drops values (e.g. a void class).
    """

    def __init__(
        self,
        folder: Path,
        classes_json: Path | None = None,
        *,
        ignore: list[int] | None = None,
        min_area: float = 0.0,
        context: float | None = None,
        limit: int | None = None,
        skips: SkipCounter | None = None,
        name: str | None = None,
    ) -> None:
        self.root = Path(folder)
        self.name = name or f"labelmap:{self.root.name}"
        self.context = context
        classes_path = classes_json or find_classes_json(self.root)
        self.classes = read_classes(classes_path) if classes_path is not None else None
        ignored = set(ignore or [])
        skips = skips if skips is not None else SkipCounter()
        self.paths = list_pngs(self.root)
        self.entries: list[tuple[int, int]] = []
        for file_index, path in enumerate(self.paths):
            if limit is not None and len(self.entries) >= limit:
                break
            try:
                labels = _read_labels(path)
            except MaskReadError as error:
                skips.add(self.name, str(path.relative_to(self.root)), str(error))
                continue
            counts = np.bincount(labels.reshape(-1).astype(np.int64))
            for raw in np.flatnonzero(counts):
                value = int(raw)
                if value in ignored or (self.classes is not None and value not in self.classes):
                    continue
                if counts[value] >= min_area * labels.size:
                    self.entries.append((file_index, value))
        if limit is not None:
            self.entries = self.entries[:limit]

    def __len__(self) -> int:
        return len(self.entries)

    def item_name(self, index: int) -> str:
        file_index, value = self.entries[index]
        label = self.classes.get(value, str(value)) if self.classes else str(value)
        return f"{self.paths[file_index].relative_to(self.root)}#{label}"

    def load(self, index: int) -> np.ndarray:
        file_index, value = self.entries[index]
        return (_read_labels(self.paths[file_index]) == value).astype(np.float32)
