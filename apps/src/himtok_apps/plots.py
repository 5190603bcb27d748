"""Figures more than one app draws."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def save_iou_curve(
    path: Path,
    per_length: Mapping[int, Mapping[str, float]],
    title: str = "",
    references: Mapping[str, float] | None = None,
) -> None:
    """mIoU (and cIoU, boundary IoU when given) against the number of tokens; ``references`` are drawn as
    labelled dotted lines."""
    lengths = sorted(per_length)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(lengths, [per_length[n]["miou"] for n in lengths], "o-", label="mIoU")
    if all("ciou" in per_length[n] for n in lengths):
        ax.plot(lengths, [per_length[n]["ciou"] for n in lengths], "^-.", label="cIoU")
    if all("boundary_iou" in per_length[n] for n in lengths):
        ax.plot(lengths, [per_length[n]["boundary_iou"] for n in lengths], "s--", label="boundary IoU")
    for (label, value), color in zip(
        (references or {}).items(), ("0.45", "tab:green", "tab:red"), strict=False
    ):
        ax.axhline(value, linestyle=":", color=color, linewidth=1)
        below = value > 0.9  # keep the label inside the axes
        ax.annotate(
            f"{label} {value:.2f}",
            (lengths[-1], value),
            xytext=(0, -2 if below else 2),
            textcoords="offset points",
            ha="right",
            va="top" if below else "bottom",
            fontsize=7,
            color=color,
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths)
    ax.set_xticklabels([str(n) for n in lengths])
    ax.set_xlabel("number of tokens")
    ax.set_ylabel("validation IoU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_reconstruction_grid(
    path: Path,
    inputs: np.ndarray,
    recons: Mapping[int, np.ndarray],
    ious: Mapping[int, np.ndarray] | None = None,
) -> None:
    """One row per mask: the input, then its reconstruction from each number of tokens."""
    lengths = sorted(recons)
    rows, cols = inputs.shape[0], len(lengths) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows), squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(inputs[r], cmap="gray", vmin=0, vmax=1)
        for c, length in enumerate(lengths, start=1):
            axes[r, c].imshow(recons[length][r], cmap="gray", vmin=0, vmax=1)
            if ious is not None:
                axes[r, c].set_xlabel(f"IoU {ious[length][r]:.2f}", fontsize=7, labelpad=1)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("input", fontsize=9)
    for c, length in enumerate(lengths, start=1):
        axes[0, c].set_title(f"{length} token{'s' if length > 1 else ''}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
