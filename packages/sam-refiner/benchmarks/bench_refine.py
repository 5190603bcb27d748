"""Refinement throughput on CPU: several masks per image (one image embedding shared) against one mask per image.

    uv run python packages/sam-refiner/benchmarks/bench_refine.py [--quick] [--frame 128|1024] [--masks-per-image 8]

A random tiny standard SAM (`tiny_sam`; --frame 1024 gives SAM's real input frame and 64x64 embedding with the tiny
widths), box+points prompts, random images at 480x640 and disk masks. Three rows, measured in the same run:
  shared     all masks of an image in one `refine` call: one image embedding per image;
  per-mask   one `refine` call per mask: the embedding is recomputed for every mask (what reuse saves);
  1/image    one mask per image, so every mask pays for its own embedding (the same work as per-mask, batched).
The ratio shared / per-mask is the gain from reusing the embedding.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from himtok_sam_refiner import BoxPointsSettings, SamRefiner, tiny_sam


def best_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def disks(count: int, size: tuple[int, int], rng: np.random.Generator) -> list[np.ndarray]:
    rows, cols = np.indices(size)
    out = []
    for _ in range(count):
        r, c = rng.uniform(0.2, 0.8) * size[0], rng.uniform(0.2, 0.8) * size[1]
        radius = rng.uniform(0.05, 0.25) * min(size)
        out.append((rows - r) ** 2 + (cols - c) ** 2 < radius**2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, 2 images")
    parser.add_argument(
        "--frame", type=int, default=128, choices=[128, 256, 512, 1024], help="SAM input frame"
    )
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--masks-per-image", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images_count = 2 if args.quick else args.images
    repeats = 1 if args.quick else args.repeats

    window = 14 if args.frame >= 512 else 4
    refiner = SamRefiner(
        tiny_sam(seed=0, image_size=args.frame, window_size=window),
        settings=BoxPointsSettings(fallback_iou=0.0),
    )
    rng = np.random.default_rng(0)
    size = (480, 640)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(images_count)]
    masks = [disks(args.masks_per_image, size, rng) for _ in images]
    total = images_count * args.masks_per_image

    shared = best_time(lambda: refiner.refine(images, masks), repeats)
    per_mask = best_time(
        lambda: [refiner.refine(im, m) for im, ms in zip(images, masks, strict=True) for m in ms], repeats
    )
    one_each = best_time(lambda: refiner.refine(images, [ms[0] for ms in masks]), repeats)

    print(
        f"tiny SAM, frame {args.frame}, {images_count} images 480x640, {args.masks_per_image} masks/image, "
        f"{args.threads} thread(s), best of {repeats}"
    )
    print(f"{'mode':<10} {'masks':>6} {'seconds':>9} {'masks/s':>9}")
    print(f"{'shared':<10} {total:>6} {shared:>9.3f} {total / shared:>9.1f}")
    print(f"{'per-mask':<10} {total:>6} {per_mask:>9.3f} {total / per_mask:>9.1f}")
    print(f"{'1/image':<10} {images_count:>6} {one_each:>9.3f} {images_count / one_each:>9.1f}")
    print(f"embedding reuse: {per_mask / shared:.2f}x the masks/s of recomputing it per mask")


if __name__ == "__main__":
    main()
