"""End-of-run report: reconstruction grid (like the paper's Figure 1), IoU-vs-tokens plot, summary.json."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from himtok_apps.plots import save_iou_curve, save_reconstruction_grid


def write_report(
    folder: Path,
    summary: dict[str, Any],
    inputs: np.ndarray,
    recons: Mapping[int, np.ndarray],
    ious: Mapping[int, np.ndarray] | None = None,
    title: str = "",
) -> dict[str, Path]:
    """Write ``reconstructions.png``, ``iou_vs_tokens.png`` and ``summary.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "grid": folder / "reconstructions.png",
        "curve": folder / "iou_vs_tokens.png",
        "summary": folder / "summary.json",
    }
    save_reconstruction_grid(paths["grid"], inputs, recons, ious)
    per_length = {int(k): v for k, v in summary["validation"]["per_length"].items()}
    save_iou_curve(paths["curve"], per_length, title, summary["validation"].get("references"))
    paths["summary"].write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    return paths


def lengths_label(lengths: Sequence[int]) -> str:
    return ",".join(str(n) for n in lengths)
