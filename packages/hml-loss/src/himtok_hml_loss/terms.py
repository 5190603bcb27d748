"""Per-map BCE and Dice statistics, computed in float32 over the last two (spatial) dimensions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def probabilities(predictions: Tensor, *, from_probs: bool, prob_eps: float) -> Tensor:
    """Probabilities in float32: ``sigmoid(logits)``, or the given probabilities clamped to [eps, 1 - eps]."""
    predictions = predictions.float()
    if from_probs:
        return predictions.clamp(prob_eps, 1.0 - prob_eps)
    return torch.sigmoid(predictions)


def bce_per_map(predictions: Tensor, labels: Tensor, probs: Tensor, *, from_probs: bool) -> Tensor:
    """Mean binary cross-entropy over H, W: ``[..., H, W] -> [...]``.

    Logits go through the numerically stable ``binary_cross_entropy_with_logits``; probabilities use the
    already clamped ``probs`` (as the official LMM loss does, so the log never sees 0).
    """
    if from_probs:
        elementwise = F.binary_cross_entropy(probs, labels, reduction="none")
    else:
        elementwise = F.binary_cross_entropy_with_logits(predictions.float(), labels, reduction="none")
    return elementwise.mean(dim=(-2, -1))


def dice_sums(probs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(sum p*y, sum p, sum y) over H, W, each ``[...]``."""
    flat_p = probs.flatten(-2)
    flat_y = labels.flatten(-2)
    intersection = (flat_p * flat_y).sum(-1)
    return intersection, flat_p.sum(-1), flat_y.sum(-1)


def dice_from_sums(intersection: Tensor, pred_sum: Tensor, label_sum: Tensor, eps: float) -> Tensor:
    """1 - (2 I + eps) / (P + Y + eps): 0 for a perfect match, and 0 when prediction and label are both empty."""
    return 1.0 - (2.0 * intersection + eps) / (pred_sum + label_sum + eps)
