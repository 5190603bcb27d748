"""HML forward + backward: the vectorised loss against a per-sample loop, measured in the same run.

    uv run python packages/hml-loss/benchmarks/bench_hml.py [--quick] [--batch 64] [--size 256]

Full level + 3 partial levels (fixed seed, shared by the batch), float32 logits, CPU unless --device says
otherwise. The loop is linear in the batch, so with --quick it is timed on a slice of the batch and scaled.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from himtok_hml_loss import HierarchicalMaskLoss, sample_levels

sys.path.insert(0, str(Path(__file__).resolve().parent))
from per_sample_reference import per_sample_hml


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up: builds the cached operators, first-call allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def random_masks(batch: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Blobs: thresholded smooth noise, so masks have real regions and edges."""
    noise = torch.rand(batch, 1, size // 16, size // 16, generator=generator)
    smooth = torch.nn.functional.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
    return (smooth[:, 0] > 0.55).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, loop timed on 4 samples")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    levels = sample_levels(3, generator=gen)
    masks = random_masks(args.batch, args.size, gen).to(device)
    logits = torch.randn(args.batch, 4, args.size, args.size, generator=gen).to(device).requires_grad_(True)
    loss = HierarchicalMaskLoss()
    repeats = 2 if args.quick else 5
    loop_batch = min(args.batch, 4 if args.quick else args.batch)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def vectorised() -> None:
        logits.grad = None
        loss(logits, masks, levels).total.backward()
        sync()

    level_list = levels.tolist()

    def loop() -> None:
        logits.grad = None
        per_sample_hml(logits[:loop_batch], masks[:loop_batch], level_list).backward()
        sync()

    # Same numbers on the timed slice, so the comparison is between equal computations.
    got = loss(logits[:loop_batch], masks[:loop_batch], levels).total.item()
    want = per_sample_hml(logits[:loop_batch], masks[:loop_batch], level_list).item()
    t_vec = best_time(vectorised, repeats)
    t_loop = best_time(loop, 1 if args.quick else 2) * args.batch / loop_batch
    print(f"HML forward+backward, batch {args.batch}, {args.size}x{args.size}, full + levels {level_list}, ")
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, loss values agree: |diff| {abs(got - want):.2e}"
    )
    scaled = (
        f" (timed on {loop_batch} samples, scaled x{args.batch / loop_batch:g})"
        if loop_batch < args.batch
        else ""
    )
    print(f"{'implementation':<34}{'seconds/step':>14}{'ratio':>10}")
    print(f"{'per-sample loop (baseline)':<34}{t_loop:>14.3f}{1.0:>10.2f}{scaled}")
    print(f"{'HierarchicalMaskLoss (vectorised)':<34}{t_vec:>14.3f}{t_loop / t_vec:>10.2f}")


if __name__ == "__main__":
    main()
