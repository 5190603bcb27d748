"""The official HiMTok JSONL training format: one JSON object per line with a ``mask`` PNG path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from himtok_apps.data.errors import SkipCounter
from himtok_apps.data.source import MaskSource, read_mask_png


def _resolve(mask: str, candidates: list[Path]) -> Path:
    for root in candidates:
        if (root / mask).is_file():
            return root / mask
    return candidates[0] / mask  # missing: reported (skipped and counted) when drawn


class JsonlSource(MaskSource):
    """Masks named by the ``mask`` field of each line. Relative paths resolve against ``root`` when given,
    else against the file's folder or its parent (the official layout keeps the JSONL in ``anns/``).
    Lines without a ``mask`` (text-only samples) are left out; malformed lines are skipped and counted."""

    def __init__(
        self,
        file: Path,
        root: Path | None = None,
        *,
        context: float | None = None,
        limit: int | None = None,
        skips: SkipCounter | None = None,
        name: str | None = None,
    ) -> None:
        self.file = Path(file)
        self.name = name or f"jsonl:{self.file.name}"
        self.context = context
        skips = skips if skips is not None else SkipCounter()
        candidates = [Path(root)] if root is not None else [self.file.parent, self.file.parent.parent]
        self.paths: list[Path] = []
        try:
            lines = self.file.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"{self.file}: unreadable JSONL ({error})") from None
        for number, line in enumerate(lines, start=1):
            if limit is not None and len(self.paths) >= limit:
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                skips.add(self.name, f"line {number}", f"malformed JSON: {error}")
                continue
            mask = record.get("mask") if isinstance(record, dict) else None
            if isinstance(mask, str) and mask:
                self.paths.append(_resolve(mask, candidates))

    def __len__(self) -> int:
        return len(self.paths)

    def item_name(self, index: int) -> str:
        return self.paths[index].name

    def load(self, index: int) -> np.ndarray:
        return read_mask_png(self.paths[index])
