"""Command line of `uv run apps/infer`: parse and check every flag up front, then run."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from himtok_apps.cli_common import OneLineParser, fail
from himtok_apps.infer.config import (
    DEFAULT_MODEL,
    DEMO_MODEL_REQUESTS,
    DEMO_REQUESTS,
    DTYPES,
    InferConfig,
    is_model_dir,
    parse_device,
)
from himtok_apps.infer.engine import DecodeOptions
from himtok_apps.infer.refine import REFINERS, RefinerUnavailable, check_refiner
from himtok_apps.infer.requests import (
    TASK_ARGUMENTS,
    TASK_NAMES,
    TASK_REQUIRES,
    Request,
    parse_box,
    parse_classes,
    parse_point,
    requests_from_arguments,
    requests_from_jsonl,
)

PROG = "infer"
DESCRIPTION = """\
Segment images with a HiMTokModel: masks as PNGs (binary, overlay, optional soft maps) and one results.jsonl
line per request (answer, masks as COCO RLE, boxes in pixels, mask codes, timings, error).

With no arguments: held-out shapes scenes (apps/data/demo-shapes) with the shipped demo model
(apps/data/demo-model), written to runs/infer-<timestamp>/."""

EPILOG = """\
Tasks (--task T and its argument; the canonical phrasing of himtok-prompt-templates is used):
  res --ref TEXT          referring segmentation         gres --ref TEXT      the object may be absent (Yes/No)
  rec --ref TEXT          mask, then its box             reason --ref TEXT    a question; answer, then mask
  openvocab --classes a,b one existence question per class (ids <image>:<class>)
  box2mask --box x1,y1,x2,y2 [--point x,y]   point2mask --point x,y [--point x,y ...]   (pixels)
  mask2text --mask PNG --classes a,b,c       which option describes the mask
--input FILE.jsonl: one request per line, {"id", "image", "prompt"} or {"id", "image", "task", "ref" |
  "question" | "classes" | "box" | "point" | "points" | "mask"}; paths relative to the file's folder.
  An optional "gt" (a mask PNG at the image's size) scores the answer: IoU with and without --refine.
Bad requests (unreadable image, empty prompt, no mask in the answer, answer cut off by --max-new-tokens)
get an "error" in their line; the run goes on. Rerunning with the same --out skips requests already done.
Data parallel: torchrun --nproc-per-node N apps/infer --input FILE.jsonl --out DIR."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--model", metavar="DIR", help="HiMTokModel directory (default: the demo model, apps/data/demo-model)"
    )
    group = parser.add_argument_group("what to segment")
    group.add_argument("--image", nargs="+", metavar="PATH", help="one or more images")
    group.add_argument(
        "--prompt", metavar="TEXT", help="the question, as is (e.g. 'Segment <ref>the dog</ref>.')"
    )
    group.add_argument("--task", choices=TASK_NAMES, help="build the question for a task (see below)")
    group.add_argument(
        "--ref", "--question", dest="ref", metavar="TEXT", help="expression, or question for reason"
    )
    group.add_argument("--classes", metavar="A,B", help="openvocab classes / mask2text options")
    group.add_argument("--box", metavar="X1,Y1,X2,Y2", help="box2mask box, pixels")
    group.add_argument(
        "--point", action="append", metavar="X,Y", help="point2mask point, pixels (repeatable)"
    )
    group.add_argument("--mask", metavar="PNG", help="mask2text mask")
    group.add_argument("--input", metavar="FILE.jsonl", help="requests, one JSON object per line")
    group = parser.add_argument_group("outputs")
    group.add_argument("--out", metavar="DIR", help="output folder (default runs/infer-<timestamp>)")
    group.add_argument(
        "--num-tokens", type=int, default=32, metavar="N", help="decode masks from the first N tokens (1..32)"
    )
    group.add_argument("--all-lengths", action="store_true", help="also write the first mask at 1..32 tokens")
    group.add_argument("--save-soft", action="store_true", help="also write probability maps (16-bit PNG)")
    group.add_argument(
        "--no-overlay",
        action="store_true",
        help="skip the overlay PNGs (about 400 KB per 640x480 mask; the slowest file to write)",
    )
    group.add_argument(
        "--decode",
        choices=("soft", "hard"),
        default="soft",
        help="soft token distributions (official) or codes",
    )
    group.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default 0.5)")
    group = parser.add_argument_group("running")
    group.add_argument(
        "--batch-size", type=int, default=8, metavar="N", help="requests per batch (default 8)"
    )
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    group.add_argument(
        "--dtype", choices=("auto", *DTYPES), default="auto", help="default: bf16 on GPU, fp32 on CPU"
    )
    group.add_argument(
        "--max-new-tokens", type=int, default=128, metavar="N", help="answer length limit (default 128)"
    )
    group.add_argument(
        "--answer-prefix",
        default="",
        metavar="TEXT",
        help="start every answer with TEXT ('<|mt_start|>' asks for a mask at once)",
    )
    group.add_argument("--refine", choices=REFINERS, help="refine masks (needs --sam)")
    group.add_argument(
        "--sam", metavar="DIR", help="SAM refiner weights: transformers SAM directory or sam.pth"
    )
    group.add_argument(
        "--retry-errors", action="store_true", help="on resume, rerun requests that had an error"
    )
    group.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _task_flags(args: argparse.Namespace) -> list[str]:
    given = {
        "ref": args.ref,
        "classes": args.classes,
        "box": args.box,
        "points": args.point,
        "mask": args.mask,
    }
    return [FLAGS[name] for name, value in given.items() if value is not None]


def _check_ranges(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 1 <= args.num_tokens <= 32:
        parser.error(f"--num-tokens must lie in 1..32, got {args.num_tokens}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_new_tokens < 1:
        parser.error(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if not 0.0 < args.threshold < 1.0:
        parser.error(f"--threshold must lie in (0, 1), got {args.threshold}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    try:
        parse_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    if args.sam is not None and args.refine is None:
        parser.error("--sam is only used with --refine sam")


FLAGS = {"ref": "--ref", "classes": "--classes", "box": "--box", "points": "--point", "mask": "--mask"}


def _check_task_flags(parser: argparse.ArgumentParser, task: str, given: list[str]) -> None:
    allowed = {FLAGS[f] for f in TASK_ARGUMENTS[task]}
    if task == "openvocab":
        allowed = {"--classes"}
    unused = [f for f in given if f not in allowed]
    if unused:
        parser.error(f"--task {task} does not use {', '.join(unused)}")
    missing = [FLAGS[f] for f in TASK_REQUIRES[task] if FLAGS[f] not in given]
    if missing:
        parser.error(f"--task {task} needs {' and '.join(missing)}")


def requests_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Request]:
    """The requests the flags describe; flag mistakes are one-line errors (exit 2)."""
    task_flags = _task_flags(args)
    if args.input is not None:
        extra = [
            f for f, v in (("--image", args.image), ("--prompt", args.prompt), ("--task", args.task)) if v
        ]
        if extra or task_flags:
            parser.error(f"--input takes its requests from the file; drop {', '.join(extra + task_flags)}")
        try:
            return requests_from_jsonl(args.input)
        except ValueError as err:
            fail(PROG, str(err))
    if args.image is None:
        if args.prompt is not None or args.task is not None or task_flags:
            parser.error("--prompt and --task need --image PATH... (or use --input FILE.jsonl)")
        return requests_from_jsonl(DEMO_REQUESTS if args.model is not None else DEMO_MODEL_REQUESTS)
    if (args.prompt is None) == (args.task is None):
        parser.error("--image needs either --prompt TEXT or --task T (with its argument)")
    if args.prompt is not None:
        if task_flags:
            parser.error(f"{', '.join(task_flags)} go with --task, not --prompt")
        if not args.prompt.strip():
            parser.error("--prompt is empty")
    else:
        _check_task_flags(parser, args.task, task_flags)
    try:
        requests = requests_from_arguments(
            args.image,
            prompt=args.prompt,
            task=args.task,
            ref=args.ref,
            classes=parse_classes(args.classes) if args.classes is not None else None,
            box=parse_box(args.box) if args.box is not None else None,
            points=[parse_point(p) for p in args.point] if args.point is not None else None,
            mask=args.mask,
        )
    except ValueError as err:
        parser.error(str(err))
    return requests


def config_from_args(argv: Sequence[str] | None = None) -> InferConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_ranges(parser, args)
    if args.refine is not None:
        try:
            check_refiner(args.refine, args.sam)
        except RefinerUnavailable as err:
            fail(PROG, str(err))
    if args.model is None:
        if not is_model_dir(DEFAULT_MODEL):
            fail(
                PROG,
                f"the demo model is not shipped yet ({DEFAULT_MODEL} is missing); pass --model DIR, a HiMTokModel "
                "directory (for the released model: uv run apps/convert_official --src RELEASE --out DIR)",
            )
        model = DEFAULT_MODEL
    else:
        model = Path(args.model)
        if not is_model_dir(model):
            fail(PROG, f"--model {model} is not a HiMTokModel directory (no himtok.json)")
    requests = requests_from_args(parser, args)
    return InferConfig(
        requests=requests,
        model=model,
        out=Path(args.out) if args.out is not None else None,
        options=DecodeOptions(
            num_tokens=args.num_tokens,
            all_lengths=args.all_lengths,
            mode=args.decode,
            threshold=args.threshold,
            max_new_tokens=args.max_new_tokens,
            answer_prefix=args.answer_prefix,
        ),
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        save_soft=args.save_soft,
        overlays=not args.no_overlay,
        refine=args.refine,
        sam=args.sam,
        retry_errors=args.retry_errors,
        progress=not args.quiet,
        threads=args.threads,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(argv)
    from himtok_apps.infer.runner import run

    try:
        run(config)
    except (ValueError, RefinerUnavailable) as err:
        fail(PROG, str(err))
    return 0
