"""``--tokenizer DIR --masks SOURCE``: a mask tokenizer alone, at every number of tokens 1..32.

The masks come from any ``--data`` source of the stage-1 trainer, rendered as its validation renders them (the
full frame, or the object's box x ``context``, stretched to the tokenizer's input size). Scoring is stage 1's
(``himtok_apps.tokenizer_eval``): mIoU, cIoU and boundary IoU of the reconstructions thresholded at 0.5.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from himtok_mask_tokenizer import MaskTokenizer

from himtok_apps.data import SkipCounter, build_source, parse_data_spec, render_validation
from himtok_apps.metrics import iou
from himtok_apps.plots import save_iou_curve, save_reconstruction_grid
from himtok_apps.tokenizer_eval import evaluate

ALL_LENGTHS = tuple(range(1, 33))
GALLERY_LENGTHS = (1, 2, 4, 8, 16, 32)


def markdown_table(per_length: dict[int, dict[str, float]]) -> str:
    lines = ["| tokens | mIoU | cIoU | boundary IoU |", "|---:|---:|---:|---:|"]
    for n in sorted(per_length):
        v = per_length[n]
        lines.append(
            f"| {n} | {100 * v['miou']:.2f} | {100 * v['ciou']:.2f} | {100 * v['boundary_iou']:.2f} |"
        )
    return "\n".join(lines)


def evaluate_tokenizer(
    directory: Path,
    masks_spec: str,
    out: Path,
    *,
    limit: int | None = None,
    batch_size: int = 32,
    device: torch.device | None = None,
    lengths: Sequence[int] = ALL_LENGTHS,
    gallery: int = 4,
) -> dict[str, Any]:
    """Write ``report.json``, ``report.md``, ``iou_vs_tokens.png``, ``samples.jsonl`` and ``gallery.png``
    (worst and best reconstructions) into ``out``; returns the report."""
    device = device or torch.device("cpu")
    spec = parse_data_spec(masks_spec)
    model = MaskTokenizer.from_pretrained(directory).to(device).eval()
    skips = SkipCounter()
    source = build_source(spec, skips)
    masks = render_validation(source, limit, model.config.image_size, skips)
    evaluation = evaluate(model, masks, lengths, batch_size=batch_size, autocast=device.type == "cuda")
    top = max(lengths)
    names = [source.item_name(i) for i in range(len(masks))] if not skips.count() else None
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "kind": "tokenizer",
        "tokenizer": str(directory),
        "masks": masks_spec,
        "n_masks": int(masks.shape[0]),
        "mask_size": int(model.config.image_size),
        "threshold": 0.5,
        "skipped": skips.summary(),
        "per_length": {str(n): v for n, v in evaluation.per_length.items()},
        "codes": {k: v for k, v in evaluation.codes.items() if k != "entropy_bits"},
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    title = f"{directory.name}: {masks.shape[0]} masks"
    (out / "report.md").write_text(
        f"## Mask tokenizer `{directory}` on `{masks_spec}`\n\n{markdown_table(evaluation.per_length)}\n"
    )
    save_iou_curve(out / "iou_vs_tokens.png", evaluation.per_length, title)
    with (out / "samples.jsonl").open("w") as handle:
        for i in range(masks.shape[0]):
            row: dict[str, Any] = {
                "index": i,
                "IoU": [round(float(evaluation.ious[n][i]), 5) for n in lengths],
            }
            if names is not None:
                row["item"] = names[i]
            handle.write(json.dumps(row) + "\n")
    _gallery(
        out / "gallery.png",
        model,
        masks,
        evaluation.ious[top],
        gallery,
        [n for n in GALLERY_LENGTHS if n in lengths],
    )
    return report


@torch.no_grad()
def _gallery(
    path: Path, model: MaskTokenizer, masks: torch.Tensor, scores: np.ndarray, k: int, lengths: list[int]
) -> None:
    """The k worst then the k best masks at the largest length, with their reconstructions."""
    order = np.argsort(scores, kind="stable")
    chosen = list(dict.fromkeys([*order[:k].tolist(), *order[::-1][:k][::-1].tolist()]))
    if not chosen or not lengths:
        return
    device = next(model.parameters()).device
    target = masks[chosen].to(device)
    tokens = model.encode(target)
    recons = {n: model.decode(tokens[:, :n]).float().cpu() for n in lengths}
    ious = {n: iou(recons[n], target.cpu()).numpy() for n in lengths}
    save_reconstruction_grid(path, target.cpu().numpy(), {n: r.numpy() for n, r in recons.items()}, ious)
