"""What a benchmark run writes: ``report.json``, ``report.md`` (one table per benchmark and split, protocols
side by side), and per (split, protocol) folder ``samples.jsonl`` and ``gallery.png`` (worst and best samples)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from himtok_apps.eval import masks as M
from himtok_apps.eval.predictions import prediction_rle
from himtok_apps.eval.runner import read_image
from himtok_apps.eval.samples import Sample
from himtok_apps.eval.scoring import Scored

GALLERY_SIDE = 320  # longest side of a gallery image, in pixels


def results_table(scored: Sequence[Scored]) -> list[dict[str, Any]]:
    """One flat row per (benchmark, split, subset, protocol)."""
    rows = []
    for s in scored:
        for subset, summary in s.groups.items():
            rows.append(
                {
                    "benchmark": s.benchmark,
                    "split": s.split,
                    "subset": subset,
                    "protocol": s.protocol,
                    **summary,
                }
            )
    return rows


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def markdown(scored: Sequence[Scored]) -> str:
    """A table per (benchmark, split); rows are protocols (and ReasonSeg subsets); metrics in percent."""
    blocks = []
    keys = list(dict.fromkeys((s.benchmark, s.split, s.task) for s in scored))
    for benchmark, split, task in keys:
        mine = [s for s in scored if (s.benchmark, s.split, s.task) == (benchmark, split, task)]
        first = next(iter(mine[0].groups.values()))
        if task == "rec":
            metrics = [k for k in first if k.startswith("acc@")] + ["mean_box_iou"]
            extra = ["n_unparsed", "grid"]
        else:
            metrics = ["gIoU", "cIoU"] + (["N_acc", "T_acc"] if "N_acc" in first else [])
            metrics += [k for k in first if k.startswith("Pr@")]
            extra = ["n_empty_pred"]
        header = ["protocol", "subset", "samples", "images", *metrics, *extra]
        lines = [f"## {benchmark} {split} ({'REC' if task == 'rec' else 'segmentation'})", ""]
        lines.append("| " + " | ".join(h.replace("_", "-") for h in header) + " |")
        lines.append("|" + "---|" * 2 + "---:|" * (len(header) - 2))
        for s in mine:
            for subset, summary in s.groups.items():
                cells = [s.protocol, subset, str(summary["n_samples"]), str(summary.get("n_images", ""))]
                cells += [_pct(summary.get(m)) for m in metrics]
                cells += [str(summary.get(e, "")) for e in extra]
                lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return (
        "\n\n".join(blocks)
        + "\n\nMetrics in percent. gIoU: mean per-sample IoU; cIoU: cumulative I / cumulative U.\n"
    )


def write_report(out: Path, scored: Sequence[Scored], meta: dict[str, Any]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    report = {**meta, "protocols": {s.protocol: s.meta for s in scored}, "results": results_table(scored)}
    paths = {"json": out / "report.json", "markdown": out / "report.md"}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    paths["markdown"].write_text(markdown(scored))
    return paths


def write_samples(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def pick_gallery(ious: np.ndarray, k: int) -> list[int]:
    """Indices of the k worst then the k best samples (each once)."""
    order = np.argsort(ious, kind="stable")
    return list(dict.fromkeys([*order[:k].tolist(), *order[::-1][:k][::-1].tolist()]))


def _thumbnail(sample: Sample) -> tuple[np.ndarray | None, float]:
    try:
        image = read_image(sample)
    except OSError:
        return None, 1.0
    scale = min(1.0, GALLERY_SIDE / max(image.size))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    return np.asarray(image), scale


def _shrink(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    rows = np.linspace(0, mask.shape[0] - 1, shape[0]).round().astype(int)
    cols = np.linspace(0, mask.shape[1] - 1, shape[1]).round().astype(int)
    return mask[np.ix_(rows, cols)]


def _overlay(ax: Any, image: np.ndarray | None, mask: np.ndarray, color: tuple[float, float, float]) -> None:
    base = image if image is not None else np.full((*mask.shape, 3), 200, np.uint8)
    shown = base.astype(np.float32) / 255.0
    small = _shrink(mask, base.shape[:2])
    for value, tint in ((1, color), (M.IGNORE, (0.5, 0.5, 0.5))):
        where = small == value
        shown[where] = 0.45 * shown[where] + 0.55 * np.array(tint)
    ax.imshow(shown)


def _box(ax: Any, box: Sequence[float], scale: float, color: str) -> None:
    x1, y1, x2, y2 = (v * scale for v in box)
    ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=2))


def save_gallery(
    path: Path,
    samples: Sequence[Sample],
    scored: Scored,
    records: dict[str, dict[str, Any]],
    base: Path,
    k: int = 4,
) -> Path | None:
    """Rows: the k worst and k best samples; columns: image with the expression, prediction, ground truth."""
    ious = np.array([row["IoU"] for row in scored.rows])
    chosen = pick_gallery(ious, k)
    if not chosen:
        return None
    fig, axes = plt.subplots(len(chosen), 3, figsize=(9, 3 * len(chosen)), squeeze=False)
    for r, i in enumerate(chosen):
        sample, row = samples[i], scored.rows[i]
        image, scale = _thumbnail(sample)
        left, middle, right = axes[r]
        if image is not None:
            left.imshow(image)
        left.set_title("\n".join(textwrap.wrap(sample.query, 48)[:4]), fontsize=7)
        if scored.task == "rec":
            for ax, box, color, name in (
                (middle, row["box"], "red", "prediction"),
                (right, row["gt_box"], "lime", "ground truth"),
            ):
                if image is not None:
                    ax.imshow(image)
                _box(ax, box, scale, color)
                ax.set_title(name, fontsize=8)
        else:
            gt = M.ground_truth(sample.ref).dense()
            pred = M.decode(prediction_rle(records[sample.sample_id], sample, base)).astype(np.uint8)
            _overlay(middle, image, pred, (1.0, 0.1, 0.1))
            _overlay(right, image, gt, (0.1, 0.9, 0.1))
            middle.set_title("prediction", fontsize=8)
            right.set_title("ground truth", fontsize=8)
        left.set_ylabel(f"{row['sample_id']}\nIoU {row['IoU']:.3f}", fontsize=8)
        for ax in (left, middle, right):
            ax.set_xticks([])
            ax.set_yticks([])
    shown = f"{k} worst, {k} best" if len(chosen) == 2 * k else f"all {len(chosen)}, worst first"
    fig.suptitle(f"{scored.benchmark} {scored.split} ({scored.protocol}): {shown}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
