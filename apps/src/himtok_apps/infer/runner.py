"""`run(config)`: requests -> `--out` (PNGs, results.jsonl, run.json, summary.json), batched, resumable, sharded.

Under torchrun every process loads the model on its own device, takes every `world_size`-th pending request,
appends its lines to its shard file, and rank 0 merges the shards into `results.jsonl` in input order.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from himtok_lmm_adapter import HiMTokModel
from tqdm import tqdm

from himtok_apps.infer.config import InferConfig, resolve_device, resolve_dtype
from himtok_apps.infer.engine import Engine, Outcome, Prepared
from himtok_apps.infer.ground_truth import summarize
from himtok_apps.infer.pipeline import WritePipeline
from himtok_apps.infer.refine import load_refiner
from himtok_apps.infer.requests import Request
from himtok_apps.infer.results import (
    RESULTS_NAME,
    ResultsAppender,
    done_ids,
    latest_records,
    merge_results,
    shard_path,
)
from himtok_apps.infer.timing import STAGES, StageTimes
from himtok_apps.infer.writers import OutputWriter
from himtok_apps.training import default_out_dir
from himtok_apps.training import distributed as D

RUN_NAME = "run.json"
SUMMARY_NAME = "summary.json"
T = TypeVar("T")


@dataclass
class RunSummary:
    out: Path
    requests: int  # in the input
    skipped: int  # already in results.jsonl
    ran: int  # by all processes in this invocation
    errors: int  # among the lines written in this invocation
    seconds: float  # wall clock of rank 0's loop
    stages: StageTimes  # work per stage, summed over the requests run in this invocation
    write_wait: float = 0.0  # of `seconds`, how long rank 0's loop waited for the writing thread
    ground_truth: dict[str, Any] | None = None  # mIoU / cIoU of every results line with a gt, all runs

    @property
    def requests_per_second(self) -> float:
        return self.ran / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "skipped": self.skipped,
            "ran": self.ran,
            "errors": self.errors,
            "seconds": round(self.seconds, 4),
            "requests_per_second": round(self.requests_per_second, 3),
            "stage_seconds": self.stages.as_dict(4),
            "stage_shares": {k: round(v, 4) for k, v in self.stages.shares().items()},
            "write_wait_seconds": round(self.write_wait, 4),
            **({"ground_truth": self.ground_truth} if self.ground_truth is not None else {}),
        }


def batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def shard(pending: Sequence[Request], rank: int, world_size: int) -> list[Request]:
    """This process's share: every `world_size`-th pending request, starting at `rank`."""
    return list(pending[rank::world_size])


def load_model(config: InferConfig, device: torch.device, dtype: torch.dtype) -> HiMTokModel:
    try:
        return HiMTokModel.from_pretrained(config.model, dtype=dtype, device=device)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load the model at {config.model}: {err}") from None


def check_run_settings(out: Path, settings: dict[str, Any]) -> None:
    """`ValueError` when `out` holds results made with other settings (a resumed run must keep them)."""
    path = out / RUN_NAME
    if not path.is_file():
        return
    try:
        stored = json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is unreadable; use a new --out") from None
    changed = sorted(k for k in settings if stored.get(k) != settings[k])
    if changed:
        details = ", ".join(f"{k}: {stored.get(k)!r} -> {settings[k]!r}" for k in changed)
        raise ValueError(f"{out} holds results made with other settings ({details}); use a new --out")


def write_run_settings(out: Path, settings: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_NAME).write_text(json.dumps({"settings": settings}, indent=2) + "\n")


def _agreed_out(config: InferConfig, info: D.DistInfo) -> Path:
    """The output folder; under torchrun the default (it holds a timestamp) is rank 0's choice."""
    if config.out is not None:
        return config.out
    chosen = [str(default_out_dir("infer"))]
    if info.enabled:
        dist.broadcast_object_list(chosen, src=0)
    return Path(chosen[0])


def _dist_info(config: InferConfig) -> D.DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return D.DistInfo(device=resolve_device(config.device))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(config.device, local_rank=local)
    return D.setup("cuda" if device.type == "cuda" else "cpu")


def run(config: InferConfig) -> RunSummary:
    """Run every request of `config` not yet in `results.jsonl`; see the module docstring."""
    if config.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    info = _dist_info(config)
    try:
        return _run(config, info)
    finally:
        D.teardown(info)


def _run(config: InferConfig, info: D.DistInfo) -> RunSummary:
    device = info.device
    dtype = resolve_dtype(config.dtype, device)
    out = _agreed_out(config, info)
    settings = config.settings(device, dtype)
    check_run_settings(out, settings)
    refiner = load_refiner(config.refine, config.sam, device) if config.refine else None
    model = load_model(config, device, dtype)
    D.barrier(info)
    if info.is_main:
        write_run_settings(out, settings)
    D.barrier(info)
    engine = Engine(model, config.options, refiner)
    writer = OutputWriter(out, save_soft=config.save_soft, overlays=config.overlays)
    done = done_ids(out, retry_errors=config.retry_errors)
    pending = [r for r in config.requests if r.id not in done]
    mine = shard(pending, info.rank, info.world_size)
    D.barrier(info)  # every rank has read the same finished ids before any rank appends new ones
    if info.is_main:
        print(
            f"infer: {len(config.requests)} requests, {len(config.requests) - len(pending)} already in "
            f"{out / RESULTS_NAME}; model {config.model} on {device} ({str(dtype).removeprefix('torch.')})"
            + (f", {info.world_size} processes" if info.enabled else ""),
            file=sys.stderr,
        )
    sink_path = shard_path(out, info.rank) if info.enabled else out / RESULTS_NAME
    start = time.perf_counter()
    with (
        ResultsAppender(sink_path) as sink,
        WritePipeline(writer, sink) as pipeline,
        tqdm(
            total=len(mine),
            disable=not (config.progress and info.is_main),
            unit="req",
            dynamic_ncols=True,
            file=sys.stderr,
        ) as bar,
    ):
        pipeline.on_line = lambda record: _progress(bar, pipeline.errors)
        for chunk in batches(mine, config.batch_size):
            pipeline.submit(process_batch(engine, chunk))
            pipeline.drain(keep_last=True)  # this batch's files are written while the next one runs
        pipeline.drain()
    seconds = time.perf_counter() - start
    D.barrier(info)
    summary = RunSummary(
        out, len(config.requests), len(config.requests) - len(pending), 0, 0, seconds, StageTimes()
    )
    summary.write_wait = pipeline.wait_seconds
    if info.is_main:
        merge_results(out, [r.id for r in config.requests])
        summary = _summarise(summary, out, {r.id for r in pending})
        (out / SUMMARY_NAME).write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
        print(
            f"infer: wrote {out / RESULTS_NAME} ({summary.ran} new, {summary.errors} with an error); "
            f"{summary.requests_per_second:.2f} requests/s",
            file=sys.stderr,
        )
    D.barrier(info)
    return summary


def _progress(bar: Any, errors: int) -> None:
    bar.update(1)
    bar.set_postfix(errors=errors, refresh=False)


def process_batch(engine: Engine, chunk: Sequence[Request]) -> list[Outcome]:
    """Outcomes for `chunk` in its order: requests that fail to load keep their place with their error."""
    prepared: list[Prepared] = []
    early: dict[int, Outcome] = {}
    for position, request in enumerate(chunk):
        item = engine.prepare(request)
        if isinstance(item, Outcome):
            early[position] = item
        else:
            prepared.append(item)
    ran = iter(engine.run(prepared))
    return [early[p] if p in early else next(ran) for p in range(len(chunk))]


def _summarise(summary: RunSummary, out: Path, ran_ids: set[str]) -> RunSummary:
    stages = StageTimes()
    ran = errors = 0
    records = latest_records(out)
    summary.ground_truth = summarize(records.values())
    for ident, record in records.items():
        if ident not in ran_ids:
            continue
        ran += 1
        errors += record.get("error") is not None
        timings = record.get("timings", {})
        for stage in STAGES:
            stages.add(stage, float(timings.get(stage, 0.0)))
    summary.ran, summary.errors, summary.stages = ran, errors, stages
    return summary
