"""Benchmark metrics from per-sample pixel counts, vectorised over samples (see eval-protocols.md).

Per sample, with G the target pixels, N the ignore pixels and P the prediction:
* standard: ignore pixels are neither hits nor misses. ``I = |P & G|``, ``U = |P - N| + |G| - I``.
  IoU = I / U, and 1 when U = 0. cIoU = sum I / sum U (1 when every union is empty). gIoU = mean IoU.
* himtok-official: the prediction is set to 1 on ignore pixels and ignore counts as target, so
  ``I = |P & G| + |N|`` and ``U = |P | G| + |N| - |P & N|``; IoU = I / (U + 1e-10), 1 when U = 0;
  cIoU = sum I / (sum U + 1e-10).
* gRefCOCO (ReLA's table): a sample is "no target" when G is empty; the prediction says "no target" when it is
  empty (or by an explicit reject flag). TP (both): IoU 1, adds nothing to cIoU. FN (no target, object
  predicted): IoU 0, U adds the predicted area. FP (target, rejected): IoU 0, I adds 0, U adds U.
  TN: I / U. N-acc = TP / (TP + FN), T-acc = TN / (TN + FP); Pr@t over target samples only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from himtok_apps.eval.masks import Counts

REFER_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
GRES_THRESHOLDS = (0.7, 0.8, 0.9)
REC_THRESHOLDS = (0.5, 0.7, 0.9)
OFFICIAL_EPSILON = 1e-10


@dataclass(frozen=True)
class CountArrays:
    """``Counts`` of N samples as int64 arrays [N]."""

    pred: np.ndarray
    gt: np.ndarray
    ignore: np.ndarray
    inter: np.ndarray
    pred_ignore: np.ndarray

    @classmethod
    def stack(cls, rows: Sequence[Counts]) -> CountArrays:
        table = np.array([[c.pred, c.gt, c.ignore, c.inter, c.pred_ignore] for c in rows], dtype=np.int64)
        table = table.reshape(-1, 5)
        return cls(*(table[:, i] for i in range(5)))

    def __len__(self) -> int:
        return int(self.pred.shape[0])


def intersection_union(c: CountArrays, ignore_as_hit: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (I, U) [N], int64: standard (ignore excluded) or himtok-official (ignore counted as hit)."""
    if ignore_as_hit:
        inter = c.inter + c.ignore
        union = c.pred + c.gt - c.inter + c.ignore - c.pred_ignore
    else:
        inter = c.inter
        union = (c.pred - c.pred_ignore) + c.gt - c.inter
    return inter, union


def sample_iou(inter: np.ndarray, union: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
    """I / (U + epsilon) per sample, and 1.0 where U = 0."""
    inter, union = np.asarray(inter, dtype=np.float64), np.asarray(union, dtype=np.float64)
    out = np.ones_like(union)
    np.divide(inter, union + epsilon, out=out, where=union > 0)
    return out


def cumulative_iou(inter: np.ndarray, union: np.ndarray, epsilon: float = 0.0) -> float:
    """sum I / (sum U + epsilon); with epsilon 0 and every union empty, 1.0 (the empty-union convention)."""
    total_i, total_u = float(np.sum(inter, dtype=np.float64)), float(np.sum(union, dtype=np.float64))
    if epsilon == 0.0 and total_u == 0:
        return 1.0
    return total_i / (total_u + epsilon)


def precision_at(ious: np.ndarray, thresholds: Sequence[float]) -> dict[str, float | None]:
    """Fraction of samples with IoU >= t, per threshold (None without samples)."""
    return {f"Pr@{t:g}": (float(np.mean(ious >= t)) if ious.size else None) for t in thresholds}


@dataclass(frozen=True)
class NoTargetTable:
    """ReLA's outcome per sample and what it contributes to gIoU and cIoU."""

    iou: np.ndarray
    inter: np.ndarray
    union: np.ndarray
    tp: np.ndarray  # no target, rejected
    fn: np.ndarray  # no target, object predicted
    fp: np.ndarray  # target, rejected
    tn: np.ndarray  # target, object predicted


def no_target_table(
    inter: np.ndarray, union: np.ndarray, gt_empty: np.ndarray, pred_nt: np.ndarray
) -> NoTargetTable:
    gt_empty, pred_nt = np.asarray(gt_empty, dtype=bool), np.asarray(pred_nt, dtype=bool)
    tp, fn = gt_empty & pred_nt, gt_empty & ~pred_nt
    fp, tn = ~gt_empty & pred_nt, ~gt_empty & ~pred_nt
    iou = np.where(tp, 1.0, 0.0)
    iou[tn] = sample_iou(inter[tn], union[tn])
    iou[tn & (union == 0)] = 0.0  # ReLA: a target sample with an empty union scores 0
    eff_inter = np.where(tn, inter, 0)
    eff_union = np.where(tp, 0, union)
    return NoTargetTable(iou, eff_inter, eff_union, tp, fn, fp, tn)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def segmentation_summary(
    c: CountArrays,
    *,
    ignore_as_hit: bool = False,
    epsilon: float = 0.0,
    no_target: bool = False,
    pred_nt: np.ndarray | None = None,
    thresholds: Sequence[float] = REFER_THRESHOLDS,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The split's metrics and the per-sample arrays (``iou``, ``I``, ``U``, ``gt_empty``, ``pred_empty``,
    ``pred_nt``) for the per-sample JSONL.

    ``no_target``: apply ReLA's table (gRefCOCO), with ``pred_nt`` (default: the prediction is empty).
    """
    inter, union = intersection_union(c, ignore_as_hit)
    gt_empty = (c.gt + (c.ignore if ignore_as_hit else 0)) == 0
    pred_empty = c.pred == 0
    nt = pred_empty if pred_nt is None else np.asarray(pred_nt, dtype=bool)
    summary: dict[str, Any] = {"n_samples": len(c)}
    if no_target and epsilon == 0.0:
        table = no_target_table(inter, union, gt_empty, nt)
        ious, inter, union = table.iou, table.inter, table.union
        counts = {k: int(getattr(table, k.lower()).sum()) for k in ("TP", "FN", "FP", "TN")}
        summary["cIoU"] = cumulative_iou(inter, union)
        summary["gIoU"] = float(ious.mean()) if ious.size else None
        summary["N_acc"] = _ratio(counts["TP"], counts["TP"] + counts["FN"])
        summary["T_acc"] = _ratio(counts["TN"], counts["TN"] + counts["FP"])
        summary["nt_counts"] = counts
        summary.update(precision_at(ious[~gt_empty], thresholds))
    else:
        ious = sample_iou(inter, union, epsilon)
        summary["cIoU"] = cumulative_iou(inter, union, epsilon)
        summary["gIoU"] = float(ious.mean()) if ious.size else None
        if no_target:  # the official formulas, with N-acc / T-acc from empty predictions beside them
            counts = {
                "TP": int((gt_empty & nt).sum()),
                "FN": int((gt_empty & ~nt).sum()),
                "FP": int((~gt_empty & nt).sum()),
                "TN": int((~gt_empty & ~nt).sum()),
            }
            summary["N_acc"] = _ratio(counts["TP"], counts["TP"] + counts["FN"])
            summary["T_acc"] = _ratio(counts["TN"], counts["TN"] + counts["FP"])
            summary["nt_counts"] = counts
            summary.update(precision_at(ious[~gt_empty], thresholds))
        else:
            summary.update(precision_at(ious, thresholds))
    summary["n_empty_gt"] = int(gt_empty.sum())
    summary["n_empty_pred"] = int(pred_empty.sum())
    # A prediction that lies wholly in the ignore region of an all-ignore ground truth: I = U = 0, IoU 1.
    summary["n_pred_only_in_ignore"] = int(((union == 0) & ~pred_empty).sum())
    per_sample = {
        "iou": ious,
        "I": inter,
        "U": union,
        "gt_empty": gt_empty,
        "pred_empty": pred_empty,
        "pred_nt": nt,
    }
    return summary, per_sample


# ---------------------------------------------------------------------------------------------- boxes
def box_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of paired ``(x1, y1, x2, y2)`` boxes [N, 4], without the +1 (torchvision); 0 for an empty union."""
    pred, gt = (
        np.asarray(pred, dtype=np.float64).reshape(-1, 4),
        np.asarray(gt, dtype=np.float64).reshape(-1, 4),
    )
    w = np.clip(np.minimum(pred[:, 2], gt[:, 2]) - np.maximum(pred[:, 0], gt[:, 0]), 0, None)
    h = np.clip(np.minimum(pred[:, 3], gt[:, 3]) - np.maximum(pred[:, 1], gt[:, 1]), 0, None)
    inter = w * h
    area_p = np.clip(pred[:, 2] - pred[:, 0], 0, None) * np.clip(pred[:, 3] - pred[:, 1], 0, None)
    area_g = np.clip(gt[:, 2] - gt[:, 0], 0, None) * np.clip(gt[:, 3] - gt[:, 1], 0, None)
    union = area_p + area_g - inter
    out = np.zeros_like(union)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def rec_summary(
    ious: np.ndarray, unparsed: np.ndarray, grid: int, thresholds: Sequence[float] = REC_THRESHOLDS
) -> dict[str, Any]:
    """Acc@t = fraction of samples whose box IoU >= t (an unparsed answer is a miss)."""
    ious = np.asarray(ious, dtype=np.float64)
    summary: dict[str, Any] = {"n_samples": int(ious.size)}
    for t in thresholds:
        summary[f"acc@{t:g}"] = float(np.mean(ious >= t)) if ious.size else None
    summary["mean_box_iou"] = float(ious.mean()) if ious.size else None
    summary["n_unparsed"] = int(np.asarray(unparsed, dtype=bool).sum())
    summary["grid"] = grid
    return summary
