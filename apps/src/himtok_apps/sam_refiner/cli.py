"""Command line of ``uv run apps/train_sam_refiner``: parse, check everything up front, then train."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from himtok_apps.cli_common import OneLineParser
from himtok_apps.sam_refiner.config import PARTS, RefinerTrainConfig
from himtok_apps.training.runconfig import merge_resume

PROG = "train_sam_refiner"
DESCRIPTION = """\
Fine-tune the SAM refiner on (image, coarse mask, ground truth) triples. Coarse masks are the ground truth
passed through a mask tokenizer at a random number of tokens (1..32), then randomly dilated or eroded.
Loss: BCE + Dice of the best of SAM's outputs, plus the MSE of SAM's IoU estimates.

With no arguments: a tiny random SAM (256-pixel frame) fine-tunes its prompt encoder and mask decoder on
procedural shapes scenes for 1000 steps (about 2 minutes on one CPU thread; 4-minute cap); the report compares
the held-out mIoU of the coarse masks and of the refined ones before and after training. Writes
runs/sam-refiner-<timestamp>/ (or --out): checkpoint/ (SamRefiner.from_pretrained), metrics.jsonl,
report/summary.json, report/examples.png."""

EPILOG = """\
data (--data, --val-data):
  shapes:[?seed=N&size=PX]                 procedural scenes, one shape per item (default; 112 px)
  coco:INSTANCES_JSON,IMAGES_DIR[?min_area=F&limit=N&crowd=1]
                                           COCO instance masks with their images
Without --val-data the held-out masks are the held-out part of --data: other scenes for shapes:, the images
whose id ends in 0 for coco: (those are then left out of training)."""

RESUMABLE = frozenset(
    {"max_steps", "max_minutes", "device", "halt_after", "log_every", "eval_every", "ckpt_every", "resume"}
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    add = parser.add_argument
    add("--init", metavar="DIR", help="transformers SAM directory to start from (default: a tiny random SAM)")
    add("--tiny-frame", type=int, metavar="PX", help="input frame of the tiny random SAM (default 256)")
    add(
        "--mask-tokenizer", metavar="DIR", help="MaskTokenizer that makes the coarse masks (default: shipped)"
    )
    add("--data", metavar="SPEC", help="training pairs (default shapes:)")
    add("--val-data", metavar="SPEC", help="held-out pairs (default: the held-out part of --data)")
    add("--val-size", type=int, metavar="N", help="held-out masks of the final evaluation (default 64)")
    add("--val-size-during", type=int, metavar="N", help="held-out masks of periodic evaluations (32)")
    add("--max-steps", type=int, metavar="N", help="optimizer steps (default 1000)")
    add("--max-minutes", type=float, metavar="M", help="wall-clock budget, 0 = none (default 4)")
    add("--batch-size", type=int, metavar="N", help="masks per step per process (default 8)")
    add("--out", metavar="DIR", help="run folder (default runs/sam-refiner-<timestamp>)")
    add("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    add("--seed", type=int, metavar="N", help="seed of the tiny SAM, the data and the coarse masks (0)")
    add("--device", help="cpu (default), cuda or cuda:N")
    group = parser.add_argument_group("coarse masks")
    group.add_argument("--min-tokens", type=int, metavar="N", help="fewest tokens decoded (default 1)")
    group.add_argument("--max-tokens", type=int, metavar="N", help="most tokens decoded (default 32)")
    group.add_argument("--morph-prob", type=float, metavar="P", help="chance of a dilation or erosion (0.5)")
    group.add_argument(
        "--max-radius", type=float, metavar="F", help="largest radius, fraction of the long side (0.04)"
    )
    group = parser.add_argument_group("what trains, optimisation and loss")
    group.add_argument(
        "--train",
        nargs="+",
        choices=PARTS,
        metavar="PART",
        help=f"parts that train, from {', '.join(PARTS)} (default: prompt decoder; the image encoder is frozen)",
    )
    group.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    group.add_argument(
        "--min-lr-ratio", type=float, help="final / peak LR of the cosine decay (default 0.05)"
    )
    group.add_argument("--warmup-steps", type=int, help="linear warm-up steps (default 20)")
    group.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.01)")
    group.add_argument("--grad-clip", type=float, help="max gradient norm, 0 = off (default 1)")
    group.add_argument("--ema", type=float, help="EMA decay of the weights, 0 = off (default 0)")
    group.add_argument("--bce-weight", type=float, help="weight of the BCE term (default 1)")
    group.add_argument("--dice-weight", type=float, help="weight of the Dice term (default 1)")
    group.add_argument("--iou-weight", type=float, help="weight of the IoU-estimate MSE (default 1)")
    group = parser.add_argument_group("monitoring and checkpoints")
    group.add_argument("--log-every", type=int, metavar="N", help="steps between metrics lines (default 10)")
    group.add_argument("--eval-every", type=int, metavar="N", help="steps between evaluations (default 100)")
    group.add_argument("--ckpt-every", type=int, metavar="N", help="steps between checkpoints (default 100)")
    group.add_argument("--keep-checkpoints", type=int, metavar="N", help="checkpoints kept (default 2)")
    group.add_argument("--threads", type=int, metavar="N", help="torch CPU threads per process (default 1)")
    group.add_argument(
        "--halt-after", type=int, metavar="N", help="stop after N steps as if killed (testing)"
    )
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> RefinerTrainConfig:
    """Parse ``argv`` into a checked config (merged with the stored one on ``--resume``); ``ValueError``."""
    explicit: dict[str, Any] = vars(build_parser().parse_args(argv))
    if explicit.get("max_minutes") == 0:
        explicit["max_minutes"] = None
    if "resume" in explicit:
        config = merge_resume(RefinerTrainConfig, explicit, "refiner", RESUMABLE)
    else:
        known = {f.name for f in fields(RefinerTrainConfig)}
        config = RefinerTrainConfig(**{k: v for k, v in explicit.items() if k in known})
    config.validate()
    from himtok_apps.sam_refiner.data import parse_source_spec

    for spec in (config.data, config.val_data):
        if spec is not None:
            parse_source_spec(spec)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = config_from_args(argv)
    except ValueError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    from himtok_apps.sam_refiner.trainer import train
    from himtok_apps.training.loop import TrainingStopped

    try:
        summary = train(config)
    except TrainingStopped as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # bad data found while building the sources
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    if summary is not None:
        val = summary["validation"]
        print(
            f"held-out mIoU ({val['masks']} masks): coarse {val['coarse_miou']:.3f} | refined before training "
            f"{val['before']['refined_miou']:.3f} | after {val['after']['refined_miou']:.3f} "
            f"({summary['steps']} steps) | refiner {summary['checkpoint']}"
        )
    return 0
