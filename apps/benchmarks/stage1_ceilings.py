"""What a stage-1 validation set allows: IoU ceilings that need no training.

    uv run python apps/benchmarks/stage1_ceilings.py [--val-data SPEC ...]

Prints, on the validation masks at 256x256 (the trainer's defaults unless ``--val-data`` is given):

* the *resolution-only* IoU for each working resolution R: the mask area-downsampled to RxR and bilinearly
  upsampled back, thresholded at 0.5. A tokenizer that predicts at R (``internal_size``) cannot beat it;
* the *bounding-box* IoU: every mask replaced by its filled box. A tokenizer below it has not yet learned
  shapes, only rough positions and extents.
"""

from __future__ import annotations

import argparse

import torch
from himtok_apps.data import SkipCounter, build_source, parse_data_spec, render_validation
from himtok_apps.stage1 import bounding_box_iou, resolution_only_iou
from himtok_apps.stage1.config import DEFAULT_VAL_DATA

RESOLUTIONS = (128, 64, 32, 16, 8)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--val-data", nargs="+", default=DEFAULT_VAL_DATA, metavar="SPEC")
    args = parser.parse_args()
    skips = SkipCounter()
    masks = torch.cat(
        [
            render_validation(build_source(parse_data_spec(spec), skips), None, 256, skips)
            for spec in args.val_data
        ]
    )
    print(f"{masks.shape[0]} validation masks, mean foreground {float((masks > 0.5).float().mean()):.3f}")
    for size in RESOLUTIONS:
        print(
            f"resolution-only IoU at {size:>3}x{size:<3}: {float(resolution_only_iou(masks, size).mean()):.3f}"
        )
    print(f"bounding-box IoU:                 {float(bounding_box_iou(masks).mean()):.3f}")


if __name__ == "__main__":
    main()
