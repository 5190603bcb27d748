"""The inference runner behind ``uv run apps/infer``: requests -> masks (PNG, COCO RLE) and results.jsonl.

``run(InferConfig(requests, model=...))`` runs a list of ``Request`` (from ``requests_from_jsonl`` or
``requests_from_arguments``) in batches, resumably, sharded under torchrun. ``Engine`` is the batched core
(load, phrase, generate, decode, judge, timed per stage); ``himtok_apps.infer.results`` is the resume / shard /
ordered-merge store any per-request job can reuse.
"""

from himtok_apps.infer.config import DEFAULT_MODEL, DEMO_REQUESTS, InferConfig, resolve_device, resolve_dtype
from himtok_apps.infer.engine import DecodeOptions, Engine, Outcome, Prepared, load_image, read_mask
from himtok_apps.infer.prompts import TEMPLATE_TASKS, build_question
from himtok_apps.infer.refine import RefinerUnavailable, check_refiner, load_refiner, refine_segmentation
from himtok_apps.infer.requests import (
    TASK_NAMES,
    Request,
    request_from_json,
    requests_from_arguments,
    requests_from_jsonl,
)
from himtok_apps.infer.results import (
    RESULTS_NAME,
    ResultsAppender,
    done_ids,
    latest_records,
    merge_results,
    shard_path,
)
from himtok_apps.infer.runner import RunSummary, process_batch, run, shard
from himtok_apps.infer.timing import STAGES, StageTimes, TimingHooks
from himtok_apps.infer.writers import OutputWriter, mask_of, rle_of, safe_name

__all__ = [
    "DEFAULT_MODEL",
    "DEMO_REQUESTS",
    "RESULTS_NAME",
    "STAGES",
    "TASK_NAMES",
    "TEMPLATE_TASKS",
    "DecodeOptions",
    "Engine",
    "InferConfig",
    "Outcome",
    "OutputWriter",
    "Prepared",
    "RefinerUnavailable",
    "Request",
    "ResultsAppender",
    "RunSummary",
    "StageTimes",
    "TimingHooks",
    "build_question",
    "check_refiner",
    "done_ids",
    "latest_records",
    "load_image",
    "load_refiner",
    "mask_of",
    "merge_results",
    "process_batch",
    "read_mask",
    "refine_segmentation",
    "request_from_json",
    "requests_from_arguments",
    "requests_from_jsonl",
    "resolve_device",
    "resolve_dtype",
    "rle_of",
    "run",
    "safe_name",
    "shard",
    "shard_path",
]
