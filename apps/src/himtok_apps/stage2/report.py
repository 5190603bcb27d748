"""End-of-run report of a stage-2/3 run: examples with their expressions, IoU against tokens, loss curves."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from himtok_apps.plots import save_iou_curve
from himtok_apps.stage2.evaluate import LMMEvaluation

PREDICTION_TINT = np.array([255, 60, 60], dtype=np.float32)
TARGET_TINT = np.array([60, 220, 90], dtype=np.float32)


def overlay(image: np.ndarray, mask: np.ndarray, tint: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """`image` uint8 [H, W, 3] with `mask` tinted in."""
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * tint
    return out.clip(0, 255).astype(np.uint8)


def save_examples(path: Path, evaluation: LMMEvaluation, columns: int = 4) -> None:
    """Each example as image + expression, the prediction (red) and the ground truth (green)."""
    examples = evaluation.examples
    if not examples:
        return
    rows = len(examples)
    fig, axes = plt.subplots(rows, 3, figsize=(6.6, 2.3 * rows), squeeze=False)
    for r, ex in enumerate(examples):
        image = np.asarray(ex.image.convert("RGB"))
        question = ex.question.replace("<image>", "").strip()
        panels = (
            (image, "\n".join(textwrap.wrap(question, 34))),
            (overlay(image, ex.prediction, PREDICTION_TINT), f"predicted (IoU {ex.iou:.2f})"),
            (overlay(image, ex.target, TARGET_TINT), "ground truth"),
        )
        for c, (picture, label) in enumerate(panels):
            axes[r, c].imshow(picture)
            axes[r, c].set_title(label, fontsize=7)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_loss_curves(path: Path, metrics: Path) -> None:
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    if not records:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    steps = [r["step"] for r in records]
    for key, style in (("ce", "-"), ("mask_loss", "--"), ("mask_full", ":"), ("mask_levels", "-.")):
        if all(key in r for r in records):
            ax.plot(steps, [r[key] for r in records], style, label=key)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(folder: Path, evaluation: LMMEvaluation, summary: dict[str, Any], metrics: Path) -> None:
    """`examples.png`, `iou_vs_tokens.png`, `losses.png` (``summary.json`` is written by the caller)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_examples(folder / "examples.png", evaluation)
    by_tokens = {
        int(n): {"miou": v} for n, v in evaluation.summary["miou_by_tokens"].items() if v is not None
    }
    if by_tokens:
        references = {}
        ceiling = summary.get("tokenizer_ceiling", {}).get("miou")
        if ceiling is not None:
            references["tokenizer ceiling"] = ceiling
        blind = summary.get("blind_baseline", {}).get("miou")
        if blind is not None:
            references["blind baseline"] = blind
        save_iou_curve(folder / "iou_vs_tokens.png", by_tokens, "generated masks, held-out", references)
    if metrics.is_file():
        save_loss_curves(folder / "losses.png", metrics)
