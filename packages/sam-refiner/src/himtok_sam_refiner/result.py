"""What `SamRefiner.refine` returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskPrompt:
    """The prompts SAM got for one mask, in the image's own pixels."""

    points: np.ndarray  # float32 [n, 2] (x, y)
    labels: np.ndarray  # int64 [n]: 1 positive, 0 negative
    box: np.ndarray | None  # float32 [4] (x0, y0, x1, y1) inclusive, or None


@dataclass(frozen=True)
class MaskDetails:
    """Everything SAM produced for one mask (`refine(..., return_all=True)`)."""

    prompt: MaskPrompt
    low_res_logits: (
        np.ndarray
    )  # float32 [K, g, g]: every output (K = 3 for box+points, 1 official; 0 if not run)
    candidate_iou: np.ndarray  # float32 [K]: SAM's IoU estimate of each output
    candidate_probs: np.ndarray  # float32 [K, H, W]: each output at the image's size
    chosen: int  # index of the output kept (-1 when SAM was not run)


@dataclass(frozen=True)
class RefineResult:
    """One entry per coarse mask, in input order (flattened over images); maps at each image's own size."""

    probs: list[np.ndarray]  # float32 [H, W]: refined probabilities (the coarse ones where `fallback`)
    masks: list[np.ndarray]  # bool [H, W]: probs > 0.5
    iou: np.ndarray  # float32 [M]: SAM's IoU estimate of its answer (NaN when SAM was not run)
    image_index: np.ndarray  # int64 [M]: the image each mask belongs to
    fallback: np.ndarray  # bool [M]: the coarse mask was kept (box+points only)
    agreement: np.ndarray  # float32 [M]: IoU between SAM's mask and the thresholded coarse mask
    prompts: str  # "official" or "box+points"
    details: list[MaskDetails] | None = None

    def __len__(self) -> int:
        return len(self.probs)
