"""The figure of a refiner run: per held-out example, the image, the coarse mask, the refinement before and
after training, and the ground truth (each mask shown by dimming the image outside it), with IoUs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from himtok_apps.sam_refiner.data import RefineSample
from himtok_apps.sam_refiner.evaluate import Evaluation

DIM = 0.25  # brightness kept outside the mask: readable whatever the object's colour


def _tinted(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.astype(np.float32)
    out[~mask] *= DIM
    return out.astype(np.uint8)


def save_examples(
    path: Path,
    samples: Sequence[RefineSample],
    coarse: Sequence[np.ndarray],
    before: Evaluation,
    after: Evaluation,
    title: str = "",
) -> None:
    columns = ("image", "coarse", "refined, before", "refined, after", "ground truth")
    rows = len(samples)
    fig, axes = plt.subplots(
        rows, len(columns), figsize=(1.9 * len(columns), 1.9 * rows + 0.3), squeeze=False
    )
    for r, sample in enumerate(samples):
        panels = [
            (sample.image, ""),
            (_tinted(sample.image, coarse[r] > 0.5), f"IoU {before.coarse_iou[r]:.2f}"),
            (_tinted(sample.image, before.refined[r] > 0.5), _label(before, r)),
            (_tinted(sample.image, after.refined[r] > 0.5), _label(after, r)),
            (_tinted(sample.image, sample.mask), ""),
        ]
        for ax, (picture, label) in zip(axes[r], panels, strict=True):
            ax.imshow(picture)
            ax.set_xlabel(label, fontsize=7, labelpad=1)
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, name in zip(axes[0], columns, strict=True):
        ax.set_title(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _label(evaluation: Evaluation, row: int) -> str:
    kept = " (kept coarse)" if evaluation.fallback[row] else ""
    return f"IoU {evaluation.refined_iou[row]:.2f}{kept}"
