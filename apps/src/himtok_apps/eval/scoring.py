"""Score one protocol on one benchmark split: predictions + ground truth -> metrics per subset + per-sample rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from himtok_apps.eval import masks as M
from himtok_apps.eval.boxes import parse_box_official, parse_box_standard, xywh_to_xyxy
from himtok_apps.eval.metrics import (
    GRES_THRESHOLDS,
    REFER_THRESHOLDS,
    CountArrays,
    box_iou,
    rec_summary,
    segmentation_summary,
)
from himtok_apps.eval.predictions import prediction_rle, reject_flag
from himtok_apps.eval.protocols import Protocol
from himtok_apps.eval.samples import Sample


@dataclass
class Scored:
    """One (benchmark, split, protocol): metrics per subset ("all", and ReasonSeg's "short" / "long")."""

    benchmark: str
    split: str
    protocol: str
    task: str
    groups: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def subsets(samples: Sequence[Sample]) -> dict[str, np.ndarray]:
    """Boolean selections: "all", plus each ReasonSeg query subset present."""
    out = {"all": np.ones(len(samples), dtype=bool)}
    for name in ("short", "long"):
        chosen = np.array([s.subset == name for s in samples], dtype=bool)
        if chosen.any() and any(s.benchmark == "reasonseg" for s in samples):
            out[name] = chosen
    return out


def _n_images(samples: Sequence[Sample], chosen: np.ndarray) -> int:
    return len({s.ref.image_id for s, keep in zip(samples, chosen, strict=True) if keep})


def ground_truths(samples: Sequence[Sample], progress: bool = False) -> list[M.GroundTruth]:
    """The ground truth of each sample; drawn once per object (its sentences share it)."""
    cache: dict[int, M.GroundTruth] = {}
    out = []
    for sample in tqdm(samples, desc="ground truth", unit="sample", disable=not progress, leave=False):
        key = id(sample.ref)
        if key not in cache:
            cache[key] = M.ground_truth(sample.ref)
        out.append(cache[key])
    return out


def score_masks(
    samples: Sequence[Sample],
    records: dict[str, dict[str, Any]],
    protocol: Protocol,
    base: Path,
    progress: bool = False,
) -> Scored:
    """Referring / reasoning segmentation metrics of ``records`` (every sample must have one)."""
    if not samples:
        raise ValueError("no samples to score")
    benchmark, split = samples[0].benchmark, samples[0].split
    gres = benchmark == "grefcoco"
    truths = ground_truths(samples, progress)
    rows_counts: list[M.Counts] = []
    flags: list[bool | None] = []
    for sample, truth in zip(
        tqdm(samples, desc="scoring", unit="sample", disable=not progress, leave=False), truths, strict=True
    ):
        record = records[sample.sample_id]
        rows_counts.append(M.counts(prediction_rle(record, sample, base), truth))
        flags.append(reject_flag(record))
    counts = CountArrays.stack(rows_counts)
    flagged = sum(f is not None for f in flags)
    use_flags = gres and protocol.name == "standard" and flagged > 0
    pred_nt = None
    if use_flags:
        pred_nt = np.array(
            [f if f is not None else c.pred == 0 for f, c in zip(flags, rows_counts, strict=True)]
        )
    thresholds = GRES_THRESHOLDS if gres else REFER_THRESHOLDS
    groups: dict[str, dict[str, Any]] = {}
    per_sample: dict[str, np.ndarray] = {}
    for name, chosen in subsets(samples).items():
        part = CountArrays(
            *(getattr(counts, f)[chosen] for f in ("pred", "gt", "ignore", "inter", "pred_ignore"))
        )
        summary, arrays = segmentation_summary(
            part,
            ignore_as_hit=protocol.ignore_as_hit,
            epsilon=protocol.epsilon,
            no_target=gres,
            pred_nt=None if pred_nt is None else pred_nt[chosen],
            thresholds=thresholds,
        )
        summary["n_images"] = _n_images(samples, chosen)
        if not gres and summary["n_empty_gt"]:
            summary["warning"] = (
                f"{summary['n_empty_gt']} samples have an empty ground truth (a loader or data bug)"
            )
        groups[name] = summary
        if name == "all":
            per_sample = arrays
    rows = []
    for i, sample in enumerate(samples):
        record = records[sample.sample_id]
        row = {
            "sample_id": sample.sample_id,
            "query": sample.query,
            "I": int(per_sample["I"][i]),
            "U": int(per_sample["U"][i]),
            "IoU": round(float(per_sample["iou"][i]), 6),
            "gt_empty": bool(per_sample["gt_empty"][i]),
            "pred_empty": bool(per_sample["pred_empty"][i]),
            "pred_nt": bool(per_sample["pred_nt"][i]),
        }
        if sample.subset:
            row["subset"] = sample.subset
        if record.get("error"):
            row["error"] = record["error"]
        rows.append(row)
    meta = protocol.metadata("res")
    if gres:
        meta["nt_rule"] = (
            "empty-mask"
            if not use_flags
            else (
                "reject-flag"
                if flagged == len(samples)
                else f"reject-flag ({flagged} samples), empty-mask (others)"
            )
        )
    return Scored(benchmark, split, protocol.name, "res", groups, rows, meta)


def score_boxes(
    samples: Sequence[Sample], records: dict[str, dict[str, Any]], protocol: Protocol, grid: int = 999
) -> Scored:
    """REC Acc@0.5 (and 0.7, 0.9) of the answers' first boxes against the annotation boxes."""
    if not samples:
        raise ValueError("no samples to score")
    benchmark, split = samples[0].benchmark, samples[0].split
    grid_used = 999 if protocol.official_boxes else grid
    preds, gts, unparsed, rows = [], [], [], []
    for sample in samples:
        if sample.ref.box_xywh is None:
            raise ValueError(f"sample {sample.sample_id} has no annotation box")
        answer = records[sample.sample_id].get("answer")
        if not isinstance(answer, str):
            raise ValueError(f"sample {sample.sample_id}: a REC prediction needs an 'answer' text")
        w, h = sample.width, sample.height
        box = (
            parse_box_official(answer, w, h)
            if protocol.official_boxes
            else parse_box_standard(answer, w, h, grid)
        )
        gt = xywh_to_xyxy(sample.ref.box_xywh)
        preds.append(box if box is not None else (0.0, 0.0, 0.0, 0.0))
        gts.append(gt)
        unparsed.append(box is None)
    ious = box_iou(np.array(preds), np.array(gts))
    for i, sample in enumerate(samples):
        rows.append(
            {
                "sample_id": sample.sample_id,
                "query": sample.query,
                "box": [round(v, 2) for v in preds[i]],
                "gt_box": [round(v, 2) for v in gts[i]],
                "IoU": round(float(ious[i]), 6),
                "parsed": not unparsed[i],
            }
        )
    summary = rec_summary(ious, np.array(unparsed), grid_used)
    summary["n_images"] = _n_images(samples, np.ones(len(samples), dtype=bool))
    meta = protocol.metadata("rec")
    meta["box_parser"] = (
        "official regex, /999 when the values sum >= 4"
        if protocol.official_boxes
        else "<box> tag, else [a, b, c, d]"
    )
    return Scored(benchmark, split, protocol.name, "rec", {"all": summary}, rows, meta)
