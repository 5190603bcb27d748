"""`uv run apps/train_stage2` and `uv run apps/train_stage3`: teach a multimodal model to write mask tokens."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import fields

from himtok_apps.cli_common import OneLineParser
from himtok_apps.stage2.config import LOSSES, PARTS, Stage2Config, stage_defaults
from himtok_apps.training.runconfig import merge_resume

DESCRIPTION = {
    2: """Stage 2 of HiMTok: train a multimodal model to answer with mask tokens (CE + HML on soft masks).

With no arguments: a tiny InternVL trained from scratch around the shipped shapes+COCO mask tokenizer, on the
procedural `shapes:` referring set, for 15 minutes on CPU; the report (held-out mIoU, well-formed answers,
absent-object accuracy, blind baseline, tokenizer ceiling) is written to runs/stage2-<timestamp>/.""",
    3: """Stage 3 of HiMTok: fine-tune the multimodal model alone (CE only, mask decoder frozen) with more tiles.

With no arguments: fine-tunes the shipped demo model (apps/data/demo-model) on `shapes:` with up to 4 tiles plus
the thumbnail for 5 minutes on CPU.""",
}

DATA_HELP = """data sources (--data, repeatable, each SPEC optionally followed by :WEIGHT or *WEIGHT):
  shapes:[key=value&...]      procedural referring scenes generated from a seed (the CPU learning test)
  refexp:FILE.jsonl           referring expressions over COCO instances (format of ../shared/data/refexp)
  coco:instances.json         conversations for every task family generated from COCO instances
  official:META.json          the official meta JSON and its JSONL conversations with mask PNGs

model (one of):
  --model DIR                 a HiMTokModel directory (converted official release or saved by these trainers)
  --lmm DIR --mask-tokenizer DIR
                              a transformers-native InternVL plus a stage-1 tokenizer (mask vocabulary added)
  (neither)                   a tiny InternVL from scratch around apps/data/shapes-coco-tokenizer
"""

RESUMABLE = frozenset(
    {"max_steps", "max_minutes", "device", "halt_after", "log_every", "eval_every", "ckpt_every", "resume"}
)


def build_parser(stage: int) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=f"train_stage{stage}",
        description=DESCRIPTION[stage],
        epilog=DATA_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    add = parser.add_argument
    add("--model", metavar="DIR", help="HiMTokModel directory to start from")
    add("--lmm", metavar="DIR", help="transformers-native InternVL directory (with --mask-tokenizer)")
    add("--mask-tokenizer", metavar="DIR", help="stage-1 MaskTokenizer directory (with --lmm)")
    add("--data", action="append", metavar="SPEC", help="training source (repeatable; default shapes:)")
    add(
        "--val-data", action="append", metavar="SPEC", help="held-out source (default shapes:, unseen scenes)"
    )
    add("--val-size", type=int, metavar="N", help="held-out samples in the final evaluation (default 64)")
    add("--val-size-during", type=int, metavar="N", help="held-out samples in periodic evaluations (24)")
    add("--max-steps", type=int, metavar="N", help="optimizer steps (default 100000)")
    add(
        "--max-minutes", type=float, metavar="M", help="wall-clock budget, 0 = none (stage 2: 15, stage 3: 5)"
    )
    add("--batch-size", type=int, metavar="N", help="samples per step per process (default 8)")
    add(
        "--max-length", type=int, metavar="N", help="tokens per sample; longer ones are skipped (default 256)"
    )
    add("--max-tiles", type=int, metavar="N", help="image tiles per sample (stage 2: 1, stage 3: 4)")
    add("--out", metavar="DIR", help=f"run folder (default runs/stage{stage}-<timestamp>)")
    add("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    add("--seed", type=int, metavar="N", help="seed of weights, data and loss levels (default 0)")
    add("--device", help="cpu (default), cuda or cuda:N (bf16 autocast on CUDA)")
    add("--deepspeed", metavar="CONFIG", help="DeepSpeed JSON (apps/configs/zero2.json, zero3.json)")
    group = parser.add_argument_group("what trains")
    group.add_argument(
        "--train",
        nargs="+",
        choices=PARTS,
        metavar="PART",
        help=f"parts that train, from {', '.join(PARTS)} (stage 2: all; stage 3: all but decoder)",
    )
    group.add_argument(
        "--decoder-lr-scale", type=float, help="the mask decoder's LR as a fraction of --lr (default 0.1)"
    )
    group.add_argument("--lora", type=int, metavar="R", help="LoRA rank on the language model (needs peft)")
    group.add_argument("--lora-alpha", type=int, help="LoRA alpha (default 32)")
    group.add_argument(
        "--grad-checkpointing", action="store_true", help="recompute activations in backward (saves memory)"
    )
    group = parser.add_argument_group("optimisation and loss")
    group.add_argument("--lr", type=float, help="peak learning rate (stage 2: 1e-3, stage 3: 2e-4)")
    group.add_argument(
        "--min-lr-ratio", type=float, help="final / peak LR of the cosine decay (default 0.05)"
    )
    group.add_argument("--warmup-steps", type=int, help="linear warm-up steps (default 30)")
    group.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.05)")
    group.add_argument("--grad-clip", type=float, help="max gradient norm, 0 = off (default 1)")
    group.add_argument("--ema", type=float, help="EMA decay of the weights, 0 = off (default 0)")
    group.add_argument(
        "--loss",
        choices=LOSSES,
        help="mask loss: paper (every mask, every level; default) or official (reproduces the official code)",
    )
    group.add_argument(
        "--mask-loss-weight", type=float, help="weight of the mask loss, 0 = CE only (stage 2: 1, stage 3: 0)"
    )
    group.add_argument("--hml-levels", type=int, help="HML partial levels per step (stage 2: 3)")
    group = parser.add_argument_group("monitoring and checkpoints")
    group.add_argument(
        "--eval-max-new-tokens", type=int, metavar="N", help="answer budget in evaluation (64)"
    )
    group.add_argument("--log-every", type=int, metavar="N", help="steps between metrics lines (default 25)")
    group.add_argument("--eval-every", type=int, metavar="N", help="steps between evaluations (default 250)")
    group.add_argument("--ckpt-every", type=int, metavar="N", help="steps between checkpoints (default 250)")
    group.add_argument("--keep-checkpoints", type=int, metavar="N", help="checkpoints kept (default 2)")
    group.add_argument("--threads", type=int, metavar="N", help="torch CPU threads per process (default 1)")
    group.add_argument(
        "--halt-after", type=int, metavar="N", help="stop after N steps as if killed (testing)"
    )
    return parser


def config_from_args(stage: int, argv: Sequence[str] | None = None) -> Stage2Config:
    explicit = vars(build_parser(stage).parse_args(argv))
    if explicit.get("max_minutes") == 0:
        explicit["max_minutes"] = None
    if "resume" in explicit:
        config = merge_resume(Stage2Config, explicit, f"stage-{stage}", RESUMABLE)
    else:
        values = {"stage": stage, **stage_defaults(stage), **explicit}
        if stage == 3 and ("lmm" in explicit or "mask_tokenizer" in explicit) and "model" not in explicit:
            values.pop("model")
        known = {f.name for f in fields(Stage2Config)}
        config = Stage2Config(**{k: v for k, v in values.items() if k in known})
        if stage == 3 and "model" not in explicit and config.model is not None:
            from pathlib import Path

            if not Path(config.model).is_dir():
                raise ValueError(
                    f"stage 3 fine-tunes a stage-2 model; the demo model {config.model} is not there yet: "
                    "pass --model DIR (a HiMTokModel directory, e.g. a stage-2 run's checkpoint/)"
                )
    config.validate()
    if config.deepspeed is not None and importlib.util.find_spec("deepspeed") is None:
        raise ValueError(
            "--deepspeed needs DeepSpeed, which is not installed: pip install 'himtok-apps[deepspeed]'"
        )
    from himtok_apps.stage2.data import check_specs

    check_specs([*config.data, *config.val_data])
    return config


def main(stage: int, argv: Sequence[str] | None = None) -> int:
    prog = f"train_stage{stage}"
    try:
        config = config_from_args(stage, argv)
    except ValueError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    from himtok_apps.stage2.trainer import train
    from himtok_apps.training.loop import TrainingStopped

    try:
        summary = train(config)
    except TrainingStopped as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    if summary is not None:
        _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    def fmt(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    val, blind, ceiling = summary["validation"], summary["blind_baseline"], summary["tokenizer_ceiling"]
    print(
        f"held-out: mIoU {fmt(val['miou'])}, cIoU {fmt(val['ciou'])}, well-formed {fmt(val['well_formed'])}, "
        f"absent accuracy {fmt(val['absent_accuracy'])} | blind mIoU {fmt(blind['miou'])} | "
        f"tokenizer ceiling mIoU {fmt(ceiling['miou'])} | {summary['steps']} steps | model {summary['checkpoint']}"
    )


def main_stage2(argv: Sequence[str] | None = None) -> int:
    return main(2, argv)


def main_stage3(argv: Sequence[str] | None = None) -> int:
    return main(3, argv)
