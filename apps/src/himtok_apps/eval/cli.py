"""Command line of ``uv run apps/eval``: score a model, a predictions file, or a mask tokenizer alone."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from himtok_apps.cli_common import OneLineParser, fail
from himtok_apps.eval.loaders import load_benchmark
from himtok_apps.eval.predictions import check_coverage, read_predictions, unknown_ids
from himtok_apps.eval.protocols import PROTOCOLS, TASKS, Protocol, build_samples, question
from himtok_apps.eval.refer import sha256
from himtok_apps.eval.report import markdown, save_gallery, write_report, write_samples
from himtok_apps.eval.samples import BENCHMARKS, Benchmark, Sample
from himtok_apps.eval.scoring import Scored, score_boxes, score_masks
from himtok_apps.jsonl_shards import all_records

PROG = "eval"

DESCRIPTION = """\
Evaluate on the standard referring / reasoning segmentation benchmarks, by the standard protocol and by the
official HiMTok one, or evaluate a mask tokenizer alone.

  uv run apps/eval --benchmark refcoco --split val testA testB --data-root DATA --model himtok-8b --out runs/rc
  uv run apps/eval --benchmark grefcoco --split val --data-root DATA --predictions preds.jsonl
  uv run apps/eval --benchmark refcocog --split test --data-root DATA --model DIR --task rec
  uv run apps/eval --tokenizer runs/stage1/checkpoint --masks coco:apps/data/coco-masks/instances_val.json

Data layout under --data-root (the REFER layout): refcoco/{instances.json, refs(unc).p}, refcoco+/...,
refcocog/{instances.json, refs(umd).p} (refs(*).json, or the TFDS bundle refcoco.json, read too),
grefcoco/{instances.json, grefs(unc).json}, images/mscoco/images/train2014/*.jpg,
reason_seg/ReasonSeg/<split>/{*.jpg, *.json}.

Writes report.json and report.md (a table per benchmark and split, protocols side by side), and per split and
protocol samples.jsonl (one line per sample), gallery.png (worst and best samples) and, with --model,
predictions.jsonl (resumable; the format --predictions reads)."""

PREDICTIONS_HELP = """\
--predictions FILE: one JSON object per line, {"sample_id": ID, "mask": RLE | "file.png" | null} or, for
--task rec, {"sample_id": ID, "answer": TEXT}. ID is "ref_id:sent_id" (standard protocol, REC), "ref_id"
(himtok-official segmentation: one sample per object) or the image stem (ReasonSeg). RLE is COCO's
{"size": [H, W], "counts": ...} at the image's own size; PNG paths are relative to FILE's folder. Optional
"no_target": true|false is a reject flag for gRefCOCO (standard protocol).

Distributed: torchrun --nproc-per-node N apps/eval --model DIR ... shards the samples; rank 0 merges and scores."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=PREDICTIONS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model", type=Path, metavar="DIR", help="a HiMTokModel directory to run over the samples"
    )
    source.add_argument(
        "--predictions", type=Path, metavar="FILE", help="score predictions made elsewhere (JSONL)"
    )
    source.add_argument(
        "--tokenizer",
        type=Path,
        metavar="DIR",
        help="evaluate a MaskTokenizer directory alone (needs --masks)",
    )
    add("--benchmark", choices=BENCHMARKS, help="benchmark to evaluate on")
    add(
        "--split",
        nargs="+",
        metavar="S",
        help="split(s): val, testA, testB (refcoco, refcoco+, grefcoco), test (refcocog, reasonseg)",
    )
    add("--data-root", type=Path, metavar="DIR", help="root of the benchmark files (layout above)")
    add("--out", type=Path, metavar="DIR", help="output folder (default runs/eval-<timestamp>)")
    add(
        "--task",
        choices=TASKS,
        default="res",
        help="res: masks (default); rec: boxes, Acc@0.5 (refcoco, refcoco+, refcocog)",
    )
    add(
        "--protocol",
        nargs="+",
        choices=tuple(PROTOCOLS),
        default=["standard"],
        help="standard (default) and/or himtok-official; both are reported side by side",
    )
    add("--split-by", metavar="NAME", help="REFER splitBy (default unc; umd for refcocog)")
    add(
        "--image-dir",
        type=Path,
        metavar="DIR",
        help="COCO train2014 images (default <data-root>/images/mscoco/images/train2014)",
    )
    add(
        "--box-grid",
        type=int,
        default=999,
        metavar="G",
        help="standard REC: coordinates are on 0..G (default 999; 1000 for InternVL)",
    )
    add(
        "--limit",
        type=int,
        metavar="N",
        help="only the first N samples of each split (or masks, with --tokenizer)",
    )
    add(
        "--gallery",
        type=int,
        default=4,
        metavar="K",
        help="worst and best samples shown in gallery.png (default 4; 0: none)",
    )
    group = parser.add_argument_group("--model")
    group.add_argument(
        "--batch-size", type=int, default=8, metavar="N", help="samples per generate call (default 8)"
    )
    group.add_argument(
        "--num-tokens",
        type=int,
        default=32,
        metavar="N",
        help="decode masks from their first N tokens, 1..32 (default 32)",
    )
    group.add_argument(
        "--max-new-tokens",
        type=int,
        default=128,
        metavar="N",
        help="generation budget (default 128, official)",
    )
    group.add_argument(
        "--answer-prefix",
        default="",
        metavar="TEXT",
        help="text every answer starts with, e.g. '<|mt_start|>'",
    )
    group.add_argument("--device", default="auto", help="auto (default: CUDA when available), cpu, cuda")
    group.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), help="cast the model (default: as saved)")
    group = parser.add_argument_group("--tokenizer")
    group.add_argument(
        "--masks",
        metavar="SOURCE",
        help="mask source, any stage-1 --data spec (e.g. coco:instances_val.json)",
    )
    return parser


def _check(args: argparse.Namespace) -> None:
    """Flag combinations and paths, before any work (one-line errors)."""
    if args.masks is not None and args.tokenizer is None:
        fail(PROG, "--masks goes with --tokenizer")
    if args.limit is not None and args.limit < 1:
        fail(PROG, "--limit must be at least 1")
    if args.tokenizer is not None:
        if args.masks is None:
            fail(PROG, "--tokenizer needs --masks SOURCE (any stage-1 --data spec)")
        if (
            not (args.tokenizer / "config.json").is_file()
            or not (args.tokenizer / "model.safetensors").is_file()
        ):
            fail(
                PROG,
                f"--tokenizer {args.tokenizer} is not a MaskTokenizer directory (expected {args.tokenizer / 'config.json'} and model.safetensors)",
            )
        return
    for flag in ("benchmark", "split", "data_root"):
        if getattr(args, flag) is None:
            fail(
                PROG,
                f"--{flag.replace('_', '-')} is required with --{'model' if args.model else 'predictions'}",
            )
    if args.task == "rec" and args.benchmark not in ("refcoco", "refcoco+", "refcocog"):
        fail(PROG, f"--task rec needs boxes: refcoco, refcoco+ or refcocog, not {args.benchmark}")
    if not args.data_root.is_dir():
        fail(PROG, f"--data-root {args.data_root} is not a folder")
    if args.model is not None:
        if not (args.model / "himtok.json").is_file():
            fail(
                PROG,
                f"--model {args.model} is not a HiMTokModel directory (expected {args.model / 'himtok.json'})",
            )
        if not 1 <= args.num_tokens <= 32:
            fail(PROG, "--num-tokens must lie in 1..32")
        if args.batch_size < 1:
            fail(PROG, "--batch-size must be at least 1")
        if args.device not in ("auto", "cpu") and not args.device.startswith("cuda"):
            fail(PROG, f"--device must be auto, cpu or cuda, got {args.device!r}")
    if args.predictions is not None and not args.predictions.is_file():
        fail(PROG, f"--predictions {args.predictions} does not exist")


@dataclass
class Job:
    """One (split, protocol) to score."""

    benchmark: Benchmark
    protocol: Protocol
    samples: list[Sample]
    folder: Path


def plan(args: argparse.Namespace, out: Path) -> list[Job]:
    jobs = []
    for split in args.split:
        benchmark = load_benchmark(
            args.benchmark, split, args.data_root, split_by=args.split_by, image_dir=args.image_dir
        )
        for name in dict.fromkeys(args.protocol):
            protocol = PROTOCOLS[name]
            samples = build_samples(benchmark, protocol, args.task)[: args.limit]
            if not samples:
                raise ValueError(f"{args.benchmark} {split} has no samples (no sentences)")
            folder = out / f"{args.benchmark}-{split}" / (name + ("-rec" if args.task == "rec" else ""))
            jobs.append(Job(benchmark, protocol, samples, folder))
    return jobs


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if name.startswith("cuda") else "cpu"


def run_benchmark(args: argparse.Namespace, out: Path) -> int:
    from himtok_apps.training import distributed as D

    jobs = plan(args, out)
    meta: dict[str, Any] = {
        "benchmark": args.benchmark,
        "task": args.task,
        "splits": list(args.split),
        "annotation_files": {k: v for job in jobs for k, v in job.benchmark.files.items()},
        "notes": sorted({n for job in jobs for n in job.benchmark.notes}),
        "limit": args.limit,
    }
    records: dict[str, dict[str, Any]] = {}
    info = D.DistInfo()
    model = None
    if args.predictions is not None:
        records = read_predictions(args.predictions)
        meta["source"] = {"predictions": str(args.predictions), "sha256": sha256(args.predictions)}
        for job in jobs:
            check_coverage(
                job.samples, records, f"{job.benchmark.name} {job.benchmark.split} ({job.protocol.name})"
            )
        if args.limit is None:
            extra = unknown_ids({s.sample_id for job in jobs for s in job.samples}, records)
            if extra:
                shown = ", ".join(extra[:5])
                raise ValueError(
                    f"--predictions has {len(extra)} sample ids that no asked split or protocol holds ({shown})"
                )
        base = args.predictions.parent
    else:
        missing = next(
            (s.ref.image_path for job in jobs for s in job.samples if not s.ref.image_path.is_file()), None
        )
        if missing is not None:
            raise ValueError(
                f"image not found: {missing} (images go in <data-root>/images/mscoco/images/train2014/, or pass --image-dir)"
            )
        from himtok_apps.eval.runner import GenerationOptions, load_model, predict

        info = D.setup(_device(args.device))
        device = info.device if args.device in ("auto", "cpu", "cuda") else torch.device(args.device)
        model = load_model(args.model, device, args.dtype)
        options = GenerationOptions(args.batch_size, args.num_tokens, args.max_new_tokens, args.answer_prefix)
        meta["source"] = {
            "model": str(args.model),
            "generation": asdict(options),
            "world_size": info.world_size,
        }
        base = out
    scored: list[Scored] = []
    try:
        previous: Path | None = (
            None  # the last predictions file: its lines are reused where the prompt matches
        )
        for job in jobs:
            job_records = records
            if model is not None:
                questions = [_question(s, job.protocol, args.task) for s in job.samples]
                path = job.folder / "predictions.jsonl"
                reuse = all_records(previous, "sample_id") if previous is not None else None
                got = predict(model, job.samples, questions, path, options, info, reuse=reuse)
                previous = path
                if got is None:  # rank 0 scores
                    continue
                job_records = got
            if args.task == "rec":
                result = score_boxes(job.samples, job_records, job.protocol, args.box_grid)
            else:
                result = score_masks(job.samples, job_records, job.protocol, base, progress=True)
            write_samples(job.folder / "samples.jsonl", result.rows)
            if args.gallery:
                save_gallery(job.folder / "gallery.png", job.samples, result, job_records, base, args.gallery)
            scored.append(result)
    finally:
        if model is not None:
            D.teardown(info)
    if not info.is_main:
        return 0
    paths = write_report(out, scored, meta)
    print(markdown(scored))
    print(f"report: {paths['markdown']} and {paths['json']}", file=sys.stderr)
    return 0


def _question(sample: Sample, protocol: Protocol, task: str) -> str | None:
    try:
        return question(sample, protocol, task)
    except ValueError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check(args)
    out = args.out or Path("runs") / f"eval-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        if args.tokenizer is not None:
            from himtok_apps.eval.tokenizer import evaluate_tokenizer, markdown_table

            report = evaluate_tokenizer(
                args.tokenizer, args.masks, out, limit=args.limit, device=torch.device(_device(args.device))
            )
            per_length = {int(k): v for k, v in report["per_length"].items()}
            print(markdown_table(per_length))
            print(f"report: {out / 'report.md'} and {out / 'report.json'}", file=sys.stderr)
            return 0
        return run_benchmark(args, out)
    except ValueError as error:
        fail(PROG, str(error))
