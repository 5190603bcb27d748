"""Benchmark evaluation: ``uv run apps/eval`` (see ``cli.py``), or the pieces below from Python.

``load_benchmark`` reads a benchmark split, ``build_samples`` turns it into a protocol's samples, ``score_masks``
/ ``score_boxes`` score predictions, ``evaluate_tokenizer`` scores a mask tokenizer alone.
"""

from himtok_apps.eval.boxes import parse_box_official, parse_box_standard
from himtok_apps.eval.cli import build_parser, main
from himtok_apps.eval.loaders import load_benchmark
from himtok_apps.eval.masks import Counts, GroundTruth, counts, dense_counts, ground_truth
from himtok_apps.eval.metrics import (
    CountArrays,
    box_iou,
    cumulative_iou,
    intersection_union,
    no_target_table,
    rec_summary,
    sample_iou,
    segmentation_summary,
)
from himtok_apps.eval.predictions import read_predictions
from himtok_apps.eval.protocols import OFFICIAL, PROTOCOLS, STANDARD, Protocol, build_samples, question
from himtok_apps.eval.safe_pickle import PlainDataUnpickler, UnsafePickleError, load_plain_pickle, loads_plain
from himtok_apps.eval.samples import BENCHMARKS, Benchmark, Ref, Sample, Sentence
from himtok_apps.eval.scoring import Scored, score_boxes, score_masks
from himtok_apps.eval.tokenizer import evaluate_tokenizer

__all__ = [
    "BENCHMARKS",
    "OFFICIAL",
    "PROTOCOLS",
    "STANDARD",
    "Benchmark",
    "CountArrays",
    "Counts",
    "GroundTruth",
    "PlainDataUnpickler",
    "Protocol",
    "Ref",
    "Sample",
    "Scored",
    "Sentence",
    "UnsafePickleError",
    "box_iou",
    "build_parser",
    "build_samples",
    "counts",
    "cumulative_iou",
    "dense_counts",
    "evaluate_tokenizer",
    "ground_truth",
    "intersection_union",
    "load_benchmark",
    "load_plain_pickle",
    "loads_plain",
    "main",
    "no_target_table",
    "parse_box_official",
    "parse_box_standard",
    "question",
    "read_predictions",
    "rec_summary",
    "sample_iou",
    "score_boxes",
    "score_masks",
    "segmentation_summary",
]
