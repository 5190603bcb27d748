"""Command line of ``uv run apps/train_stage1``: parse, check everything up front, then train."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from himtok_apps.cli_common import OneLineParser
from himtok_apps.data.spec import parse_data_spec
from himtok_apps.stage1.config import (
    DEFAULT_TRAIN_DATA,
    DEFAULT_VAL_DATA,
    HML_SCHEDULES,
    LAYOUTS,
    PRESETS,
    RESUMABLE_OVERRIDES,
    TrainConfig,
)

DESCRIPTION = """\
Train the HiMTok stage-1 mask tokenizer (mask -> 32 coarse-to-fine tokens -> mask).

With no arguments: the `cpu` preset (causal layout) on the shipped COCO mask sample
(apps/data/coco-masks), validated on its held-out val split, about 15 minutes on 2 CPU cores.
Writes runs/stage1-<timestamp>/ (or --out): checkpoint/ (MaskTokenizer.from_pretrained),
metrics.jsonl, report/ (reconstruction grid, IoU-vs-tokens plot, summary.json), checkpoints/."""

DATA_HELP = """\
Data sources (--data / --val-data, one or more), each KIND:PATH[,EXTRA][?OPTIONS][:WEIGHT]:
  coco:ANNOTATIONS_JSON[,IMAGES_DIR]   COCO instance JSON (polygons, RLE); IMAGES_DIR only to read missing sizes
  pngdir:DIR                           every *.png under DIR (binary or soft masks)
  labelmap:DIR[,CLASSES_JSON]          each class region of each label map is a mask
                                       (classes.json in DIR or its parent is used when present)
  jsonl:FILE[,ROOT_DIR]                official HiMTok JSONL, its 'mask' field (paths relative to ROOT_DIR,
                                       else to FILE's folder or its parent)
  shapes:[?OPTIONS]                    procedural shapes (the stage-2 `shapes:` scenes), one mask per shape;
                                       options seed=N, size=PX, items=N
OPTIONS, joined with '&':
  context=F    object-centred crops: the mask's box scaled by F (>= 1), jittered in training
  min_area=F   keep masks covering at least this fraction of their frame
  limit=N      use at most N masks of the source
  augment=0    no random crops or flips for this source (rendered as in validation)
  crowd=1      (coco) keep crowd annotations too
  ignore=V     (labelmap) leave out label value V (repeatable)
WEIGHT: relative sampling weight of the source in the mixture (default 1).
Example: --data 'coco:ann.json?min_area=0.01&context=1.5:2' 'pngdir:../shared/data/davis2016-val:0.5'

Distributed: torchrun --nproc-per-node N apps/train_stage1 ... (DDP, gloo on CPU, NCCL on CUDA).
Resume: --resume RUN_DIR continues an interrupted run from its last checkpoint (same final weights)."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="train_stage1",
        description=DESCRIPTION,
        epilog=DATA_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    add = parser.add_argument
    add(
        "--preset",
        choices=PRESETS,
        help="model size (default cpu: 64 px, 8-px patches, conv stem, light pixel head)",
    )
    add(
        "--layout", choices=LAYOUTS, help="token layout: causal (default) or official (checkpoint-compatible)"
    )
    add("--data", nargs="+", metavar="SPEC", help=f"training sources (default {DEFAULT_TRAIN_DATA[0]})")
    add("--val-data", nargs="+", metavar="SPEC", help=f"validation sources (default {DEFAULT_VAL_DATA[0]})")
    add("--val-size", type=int, metavar="N", help="validation masks used at the end (default all)")
    add(
        "--max-steps",
        type=int,
        metavar="N",
        help="optimizer steps (default 1000000: the 15-minute budget ends the run first)",
    )
    add(
        "--max-minutes",
        type=float,
        metavar="M",
        help="wall-clock budget of the training loop; the LR "
        "schedule follows whichever of steps or time runs out first (default 15; 0 = no limit)",
    )
    add("--batch-size", type=int, metavar="N", help="masks per step per process (default 4)")
    add(
        "--train-size",
        type=int,
        metavar="PX",
        help="side of the masks the loss is computed on (default: the "
        "model's internal size, 64 for tiny; evaluation and the checkpoint always use 256)",
    )
    add("--out", metavar="DIR", help="run folder (default runs/stage1-<timestamp>)")
    add("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    add(
        "--init-from-official",
        metavar="PATH",
        help="fine-tune official weights (himtok.pth) in the official layout",
    )
    add("--seed", type=int, metavar="N", help="seed of weights, data order and augmentation (default 0)")
    add("--device", choices=("cpu", "cuda"), help="default cpu (bf16 autocast on cuda)")
    add("--deepspeed", metavar="CONFIG", help="DeepSpeed JSON config (needs the deepspeed extra)")
    group = parser.add_argument_group("optimisation and loss")
    group.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    group.add_argument(
        "--min-lr-ratio", type=float, help="final LR / peak LR of the cosine decay (default 0.05)"
    )
    group.add_argument("--warmup-steps", type=int, help="linear warm-up steps (default 30)")
    group.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.01)")
    group.add_argument("--grad-clip", type=float, help="max gradient norm, 0 = off (default 1.0)")
    group.add_argument("--ema", type=float, help="EMA decay of the weights, 0 = off (default 0)")
    group.add_argument(
        "--hml-schedule",
        choices=HML_SCHEDULES,
        help="HML label schedule (default resize: scales with --train-size; paper/official blur sigmas are "
        "in pixels of the training resolution)",
    )
    group.add_argument(
        "--hml-levels", type=int, help="partial levels per sample besides the full one (default 3)"
    )
    group.add_argument(
        "--level-offset",
        type=float,
        help="partial levels l are drawn with p(l) ~ 1/(l + offset); smaller favours coarse prefixes (default 2)",
    )
    group.add_argument("--bce-weight", type=float, help="HML BCE weight (default 1)")
    group.add_argument("--dice-weight", type=float, help="HML Dice weight (default 1)")
    group.add_argument("--vq-weight", type=float, help="weight of the quantizer loss (default 1)")
    group.add_argument(
        "--vq-warmup-steps",
        type=int,
        metavar="N",
        help="first N steps decode the continuous latents, then quantize (default 0)",
    )
    group.add_argument(
        "--model",
        dest="model_overrides",
        action="append",
        metavar="KEY=VALUE",
        help="override a MaskTokenizerConfig field of the preset (repeatable), e.g. encoder_depth=1",
    )
    group = parser.add_argument_group("monitoring and checkpoints")
    group.add_argument(
        "--log-every", type=int, metavar="N", help="steps between metrics.jsonl lines (default 25)"
    )
    group.add_argument("--eval-every", type=int, metavar="N", help="steps between validations (default 500)")
    group.add_argument("--ckpt-every", type=int, metavar="N", help="steps between checkpoints (default 250)")
    group.add_argument("--keep-checkpoints", type=int, metavar="N", help="checkpoints kept (default 2)")
    group.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch CPU threads per process (default 1; more helps only on idle cores)",
    )
    group.add_argument(
        "--halt-after", type=int, metavar="N", help="stop after N steps as if killed (for testing resume)"
    )
    return parser


def _parse_override(text: str) -> tuple[str, Any]:
    key, eq, raw = text.partition("=")
    if not eq or not key:
        raise ValueError(f"--model {text!r}: expected KEY=VALUE")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw  # a bare string such as pixel_head=linear
    return key, value


def config_from_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse ``argv`` into a checked ``TrainConfig`` (merged with the stored one on ``--resume``)."""
    explicit = vars(build_parser().parse_args(argv))
    if "model_overrides" in explicit:
        explicit["model_overrides"] = dict(_parse_override(t) for t in explicit["model_overrides"])
    if "init_from_official" in explicit and "resume" not in explicit:
        if explicit.get("layout", "official") != "official":
            raise ValueError("--init-from-official loads official weights: it needs --layout official")
        explicit["layout"] = "official"
    if explicit.get("max_minutes") == 0:
        explicit["max_minutes"] = None
    if "resume" in explicit:
        run = Path(explicit["resume"])
        if not (run / "run_config.json").is_file():
            raise ValueError(f"--resume {str(run)!r} is not a stage-1 run folder (no run_config.json)")
        stored = asdict(TrainConfig.load(run / "run_config.json"))
        changed = sorted(
            k
            for k, v in explicit.items()
            if k not in RESUMABLE_OVERRIDES and stored.get(k) != v and k != "out"
        )
        if changed:
            raise ValueError(
                f"--resume cannot change {', '.join('--' + k.replace('_', '-') for k in changed)}"
            )
        stored["halt_after"] = None  # a simulated kill belongs to the interrupted process, not to the run
        stored.update(explicit)
        stored["out"] = str(run)
        config = TrainConfig.from_dict(stored)
    else:
        known = {f.name for f in fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in explicit.items() if k in known})
    config.validate()
    if config.deepspeed is not None and importlib.util.find_spec("deepspeed") is None:
        raise ValueError(
            "--deepspeed needs DeepSpeed, which is not installed: pip install 'himtok-apps[deepspeed]'"
        )
    for spec in [*config.data, *config.val_data]:
        parse_data_spec(spec)
    _check_model_overrides(config)
    return config


def _check_model_overrides(config: TrainConfig) -> None:
    from himtok_apps.stage1.trainer import model_config, training_config

    try:
        exported = model_config(config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"--model: {error}") from None

    training_config(exported, config.train_size)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = config_from_args(argv)
    except ValueError as error:
        print(f"train_stage1: error: {error}", file=sys.stderr)
        return 2
    from himtok_apps.stage1.trainer import TrainingStopped, train

    try:
        train(config)
    except TrainingStopped as error:
        print(f"train_stage1: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # bad data discovered while building the sources
        print(f"train_stage1: error: {error}", file=sys.stderr)
        return 2
    return 0
