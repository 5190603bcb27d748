"""HML forward + backward: the vectorised loss against a per-sample loop, measured in the same run.

    uv run python packages/hml-loss/benchmarks/bench_hml.py [--quick] [--batch 64] [--size 256]

Full level + 3 partial levels (fixed seed, shared by the batch), float32 logits, paper schedule, CPU unless
--device says otherwise. Baseline: one separable Gaussian blur and one BCE + Dice per (sample, level), in a
Python loop (benchmarks/per_sample_reference.py). The loop is linear in the batch, so it is timed on a slice
of the batch (4 samples with --quick) and scaled. Without --quick, one more row times the official code's
blur (a full 2-D kernel) on a single sample, scaled to the batch.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from himtok_hml_loss import HierarchicalMaskLoss, sample_levels

sys.path.insert(0, str(Path(__file__).resolve().parent))
from per_sample_reference import blur_one_2d, per_sample_hml


def best_time(fn: Callable[[], None], repeats: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def random_masks(batch: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Blobs: thresholded smooth noise, so masks have real regions and edges."""
    noise = torch.rand(batch, 1, size // 16, size // 16, generator=generator)
    smooth = F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
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
    level_list = levels.tolist()
    masks = random_masks(args.batch, args.size, gen).to(device)
    logits = torch.randn(args.batch, 4, args.size, args.size, generator=gen).to(device).requires_grad_(True)
    loss = HierarchicalMaskLoss()
    loop_batch = min(args.batch, 4 if args.quick else args.batch)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def vectorised() -> None:
        logits.grad = None
        loss(logits, masks, levels).total.backward()
        sync()

    def loop(count: int, blur=None) -> Callable[[], None]:
        def run() -> None:
            logits.grad = None
            kwargs = {} if blur is None else {"blur": blur}
            per_sample_hml(logits[:count], masks[:count], level_list, **kwargs).backward()
            sync()

        return run

    # Same numbers on the timed slice, so both compute the same thing (this also warms both up).
    got = loss(logits[:loop_batch], masks[:loop_batch], levels).total.item()
    want = per_sample_hml(logits[:loop_batch], masks[:loop_batch], level_list).item()
    t_vec = best_time(vectorised, 2 if args.quick else 5)
    t_loop = best_time(loop(loop_batch), 1 if args.quick else 2, warmup=False) * args.batch / loop_batch
    rows = [("per-sample loop, separable blur", t_loop, f"timed on {loop_batch} of {args.batch}, scaled")]
    if not args.quick:
        t_2d = best_time(loop(1, blur_one_2d), 1, warmup=False) * args.batch
        rows.append(("per-sample loop, official 2-D blur", t_2d, f"timed on 1 of {args.batch}, scaled"))
    rows.append(("HierarchicalMaskLoss (vectorised)", t_vec, "whole batch"))

    print(
        f"HML forward+backward: batch {args.batch}, {args.size}x{args.size}, full level + levels {level_list}"
    )
    print(
        f"device {device}, torch threads {torch.get_num_threads()}; loss on the timed slice: {got:.6f} vs {want:.6f}"
    )
    print(f"{'implementation':<38}{'s/step':>10}{'speed-up':>10}  note")
    for name, seconds, note in rows:
        print(f"{name:<38}{seconds:>10.3f}{t_loop / seconds:>9.2f}x  {note}")
    print(f"ratio (separable per-sample loop / vectorised): {t_loop / t_vec:.1f}x")


if __name__ == "__main__":
    main()
