"""A Markdown table of finished stage-1 runs: configuration, size, cost per step, steps done, mIoU by tokens.

    uv run python apps/benchmarks/stage1_table.py runs/exp/*/

For each run folder (with ``report/summary.json``) it prints the overrides that set it apart from the preset,
the parameter count, the GFLOP of one training step (forward and backward, counted by
``torch.utils.flop_counter`` on the run's own training configuration, batch and levels), the steps the run
took in its budget, and validation mIoU at 1, 4, 8 and 32 tokens with the boundary IoU at 32.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from himtok_apps.stage1.config import LEGACY_DEFAULTS, TrainConfig
from himtok_apps.stage1.trainer import model_config, training_config
from himtok_hml_loss import HierarchicalMaskLoss
from himtok_mask_tokenizer import MaskTokenizer
from torch.utils.flop_counter import FlopCounterMode

LENGTHS = (1, 4, 8, 32)


def step_gflop(config: TrainConfig) -> tuple[float, int]:
    """(GFLOP of one training step, parameters) for the run's training configuration."""
    torch.manual_seed(0)
    model = MaskTokenizer(training_config(model_config(config), config.train_size))
    size = model.config.image_size
    masks = (torch.rand(config.batch_size, size, size) > 0.5).float()
    levels = torch.randint(1, 32, (config.batch_size, config.hml_levels))
    loss_fn = HierarchicalMaskLoss(n_levels=config.hml_levels, schedule=config.hml_schedule)
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(masks, levels)
        loss = loss_fn(out.logits, out.targets, levels).total + out.vq_aux.loss
        loss.backward()
    params = sum(p.numel() for p in model.parameters())
    return counter.get_total_flops() / 1e9, params


def describe(config: dict[str, Any]) -> str:
    overrides = ", ".join(f"{k}={v}" for k, v in config.get("model_overrides", {}).items())
    extra = []
    defaults = TrainConfig()
    for key in (
        "vq_warmup_steps",
        "hml_levels",
        "batch_size",
        "lr",
        "dice_weight",
        "bce_weight",
        "hml_schedule",
        "level_offset",
    ):
        value = config.get(key, LEGACY_DEFAULTS.get(key))
        if value is not None and value != getattr(defaults, key):
            extra.append(f"{key}={value}")
    return "; ".join(part for part in (f"{config['preset']} {overrides}".strip(), ", ".join(extra)) if part)


def row(folder: Path) -> str | None:
    summary_path = folder / "report" / "summary.json"
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    config = TrainConfig(**summary["config"])
    gflop, params = step_gflop(config)
    per_length = summary["validation"]["per_length"]
    ious = " | ".join(f"{per_length[str(n)]['miou']:.3f}" for n in LENGTHS)
    boundary = per_length["32"].get("boundary_iou", float("nan"))
    return (
        f"| {folder.name} | {describe(summary['config'])} | {params / 1e6:.2f} M | {gflop:.2f} | "
        f"{summary['steps']:,} | {ious} | {boundary:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| run | configuration | parameters | GFLOP/step | steps | @1 | @4 | @8 | @32 | boundary @32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for folder in args.runs:
        line = row(folder)
        if line is not None:
            print(line)


if __name__ == "__main__":
    main()
