"""Held-out evaluation: IoU with the ground truth of the coarse masks and of what `SamRefiner.refine` makes
of them (the inference path itself: prompts, choice by IoU estimate, fallback)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from himtok_sam_refiner import SamRefiner

from himtok_apps.metrics import boundary_iou, iou
from himtok_apps.sam_refiner.data import RefineSample

CHUNK = 16


@dataclass
class Evaluation:
    coarse_iou: np.ndarray  # [N]
    refined_iou: np.ndarray  # [N]
    coarse_boundary: np.ndarray  # [N]
    refined_boundary: np.ndarray  # [N]
    fallback: np.ndarray  # bool [N]
    refined: list[np.ndarray]  # float32 [H, W] refined probabilities

    def summary(self) -> dict[str, Any]:
        return {
            "masks": len(self.coarse_iou),
            "coarse_miou": round(float(self.coarse_iou.mean()), 4),
            "refined_miou": round(float(self.refined_iou.mean()), 4),
            "gain": round(float(self.refined_iou.mean() - self.coarse_iou.mean()), 4),
            "coarse_boundary_iou": round(float(self.coarse_boundary.mean()), 4),
            "refined_boundary_iou": round(float(self.refined_boundary.mean()), 4),
            "improved": round(float((self.refined_iou > self.coarse_iou + 1e-6).mean()), 4),
            "worsened": round(float((self.refined_iou < self.coarse_iou - 1e-6).mean()), 4),
            "fallback": round(float(self.fallback.mean()), 4),
        }


def _scores(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    p, t = torch.from_numpy(pred[None]), torch.from_numpy(target[None])
    return float(iou(p, t)[0]), float(boundary_iou(p, t)[0])


def evaluate(
    refiner: SamRefiner, samples: Sequence[RefineSample], coarse: Sequence[np.ndarray]
) -> Evaluation:
    """IoU and boundary IoU of every coarse mask and of its refinement (masks at the image's size)."""
    refined: list[np.ndarray] = []
    fallback: list[bool] = []
    for start in range(0, len(samples), CHUNK):
        chunk = range(start, min(start + CHUNK, len(samples)))
        result = refiner.refine([samples[i].image for i in chunk], [coarse[i] for i in chunk])
        refined += result.probs
        fallback += result.fallback.tolist()
    scores = np.array(
        [
            (*_scores(c > 0.5, s.mask), *_scores(r > 0.5, s.mask))
            for s, c, r in zip(samples, coarse, refined, strict=True)
        ],
        dtype=np.float64,
    ).reshape(-1, 4)
    return Evaluation(
        coarse_iou=scores[:, 0],
        refined_iou=scores[:, 2],
        coarse_boundary=scores[:, 1],
        refined_boundary=scores[:, 3],
        fallback=np.asarray(fallback, dtype=bool),
        refined=refined,
    )
