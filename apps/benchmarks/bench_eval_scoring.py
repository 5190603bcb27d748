"""How fast apps/eval scores: N samples of 640x480 masks given as COCO RLE, against a plain numpy loop.

    uv run python apps/benchmarks/bench_eval_scoring.py [--samples 10000]

Ground truth: a random polygon (COCO style) per sample; prediction: a shifted copy, as compressed RLE text (what
``--predictions`` files hold). The evaluator's path (``score_masks``: polygons and RLE text -> RLE intersections
and areas, never decoded) is timed against a per-sample loop that decodes both masks to arrays and counts
pixels with numpy. Both must give the same gIoU and cIoU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from himtok_apps.eval import STANDARD, Ref, Sample, Sentence, score_masks
from himtok_apps.eval.masks import decode, ground_truth, to_json
from pycocotools import mask as mask_utils

HEIGHT, WIDTH = 480, 640


def polygon(rng: np.random.Generator) -> np.ndarray:
    """A random star-shaped 16-gon [16, 2] inside the image."""
    cx, cy = rng.uniform(80, WIDTH - 80), rng.uniform(80, HEIGHT - 80)
    rx, ry = rng.uniform(10, 150), rng.uniform(10, 120)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    radius = rng.uniform(0.7, 1.0, size=16)
    return np.stack([cx + rx * radius * np.cos(angles), cy + ry * radius * np.sin(angles)], 1)


def flat(points: np.ndarray) -> list[float]:
    clipped = np.clip(points, 0, [WIDTH, HEIGHT])
    return [float(v) for v in clipped.ravel().round(2)]


def build(n: int) -> tuple[list[Sample], dict[str, dict]]:
    rng = np.random.default_rng(0)
    samples, records = [], {}
    for i in range(n):
        shape = polygon(rng)
        gt, pred = flat(shape), flat(shape + rng.normal(0, 8, size=2))  # the prediction: the shape, shifted
        ref = Ref(i, i, Path(f"{i}.jpg"), HEIGHT, WIDTH, (Sentence(0, "x", "x"),), segmentations=([gt],))
        samples.append(Sample(f"{i}:0", "refcoco", "val", ref, ("x",)))
        rle = mask_utils.frPyObjects([pred], HEIGHT, WIDTH)[0]
        records[f"{i}:0"] = {"sample_id": f"{i}:0", "mask": to_json(rle)}
    return samples, records


def plain_loop(samples: list[Sample], records: dict[str, dict]) -> tuple[float, float]:
    ious, total_i, total_u = [], 0, 0
    for sample in samples:
        gt = ground_truth(sample.ref).dense() == 1
        record = records[sample.sample_id]["mask"]
        pred = decode({"size": record["size"], "counts": record["counts"].encode()})
        inter, union = int(np.logical_and(pred, gt).sum()), int(np.logical_or(pred, gt).sum())
        ious.append(inter / union if union else 1.0)
        total_i, total_u = total_i + inter, total_u + union
    return float(np.mean(ious)), total_i / total_u


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=10_000)
    args = parser.parse_args()
    samples, records = build(args.samples)
    start = time.perf_counter()
    scored = score_masks(samples, records, STANDARD, Path("."))
    fast = time.perf_counter() - start
    start = time.perf_counter()
    giou, ciou = plain_loop(samples, records)
    slow = time.perf_counter() - start
    got = scored.groups["all"]
    assert abs(got["gIoU"] - giou) < 1e-9 and abs(got["cIoU"] - ciou) < 1e-9, (got, giou, ciou)
    print(f"{args.samples} samples of {WIDTH}x{HEIGHT}: gIoU {giou:.4f} cIoU {ciou:.4f} (both paths agree)")
    print(f"apps/eval (RLE):  {fast:7.2f} s  ({1e6 * fast / args.samples:.0f} us per sample)")
    print(
        f"plain numpy loop: {slow:7.2f} s  ({1e6 * slow / args.samples:.0f} us per sample), {slow / fast:.1f}x slower"
    )


if __name__ == "__main__":
    main()
