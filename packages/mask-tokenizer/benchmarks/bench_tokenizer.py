"""Throughput and peak memory of the mask tokenizer, SDPA path vs the official-style MHA path.

    uv run python packages/mask-tokenizer/benchmarks/bench_tokenizer.py            # tiny + large (batch 1)
    uv run python packages/mask-tokenizer/benchmarks/bench_tokenizer.py --quick    # tiny only, < 1 min
    uv run python packages/mask-tokenizer/benchmarks/bench_tokenizer.py --large-batch 16   # also large x16
    uv run python packages/mask-tokenizer/benchmarks/bench_tokenizer.py --device cuda --dtype bf16

"ours" runs batch-first ``scaled_dot_product_attention``; "baseline" is the same model with the same weights
whose attention is a sequence-first ``nn.MultiheadAttention`` (the official code path), measured in the same
run. ratio = ours / baseline throughput (> 1: ours is faster); "CPU-time ratio" compares the process CPU
seconds instead, which a busy machine disturbs less (try ``--threads 1`` there). Peak memory is the peak resident-set growth
during the call on CPU (``/proc/self/clear_refs``), ``torch.cuda.max_memory_allocated`` on GPU.
Also reported: the tiny preset's training step (batch 32, full level + 3 prefix levels, forward + backward
+ AdamW) in seconds and GFLOP.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig
from himtok_mask_tokenizer.modeling.reference import with_reference_attention
from torch.utils.flop_counter import FlopCounterMode


def blob_masks(batch: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch, 1, 6, 6, generator=gen)
    return (F.interpolate(noise, size=(256, 256), mode="bilinear")[:, 0] > 0.5).float()


def _proc_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_mib(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory growth (MiB) while running ``fn`` once."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    except OSError:
        return float("nan")
    base = _proc_kib("VmRSS")
    fn()
    peak = _proc_kib("VmHWM")
    return float("nan") if base is None or peak is None else max(peak - base, 0) / 1024


def _timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - start_cpu


def compare(
    ours: Callable[[], object], baseline: Callable[[], object], device: torch.device, reps: int
) -> tuple[float, float, float]:
    """Median wall seconds of ``ours`` and ``baseline`` and the ratio of their median CPU seconds, measured
    alternately after one warm-up call each, so that a changing machine load affects both alike. On a busy
    machine the CPU-time ratio is the steadier figure."""
    ours(), baseline()
    times_ours, times_base = [], []
    for _ in range(reps):
        times_ours.append(_timed(ours, device))
        times_base.append(_timed(baseline, device))
    wall_ours = statistics.median(t[0] for t in times_ours)
    wall_base = statistics.median(t[0] for t in times_base)
    cpu_ratio = statistics.median(t[1] for t in times_base) / max(
        statistics.median(t[1] for t in times_ours), 1e-9
    )
    return wall_ours, wall_base, cpu_ratio


def build(name: str, device: torch.device, dtype: torch.dtype) -> tuple[MaskTokenizer, MaskTokenizer]:
    torch.manual_seed(0)
    ours = MaskTokenizer(MaskTokenizerConfig.preset(name)).eval().to(device, dtype)
    return ours, with_reference_attention(ours).eval()  # type: ignore[return-value]


def bench_inference(
    name: str, batches: list[int], device: torch.device, dtype: torch.dtype, reps: int
) -> list[tuple[str, ...]]:
    rows = []
    ours, baseline = build(name, device, dtype)
    for batch in batches:
        masks = blob_masks(batch).to(device)
        tokens = ours.encode(masks)
        ops: dict[str, Callable[[MaskTokenizer], Callable[[], object]]] = {
            "encode": lambda model, masks=masks: lambda: model.encode(masks),
            "decode L=32": lambda model, tokens=tokens: lambda: model.decode(tokens),
        }
        for op, make in ops.items():
            with torch.inference_mode():
                mem = peak_mib(make(ours), device)  # first: fresh allocations show in the RSS
                t_ours, t_base, cpu_ratio = compare(make(ours), make(baseline), device, reps)
            rows.append(
                (
                    name,
                    op,
                    str(batch),
                    f"{batch / t_ours:.2f}",
                    f"{batch / t_base:.2f}",
                    f"{t_base / t_ours:.2f}x",
                    f"{cpu_ratio:.2f}x",
                    f"{mem:.0f}",
                )
            )
            print(" | ".join(rows[-1]), flush=True)
    return rows


def bench_train_step(batch: int, device: torch.device, reps: int) -> list[tuple[str, ...]]:
    torch.manual_seed(0)
    ours = MaskTokenizer(MaskTokenizerConfig.preset("tiny")).train().to(device)
    baseline = with_reference_attention(ours).train()
    masks = blob_masks(batch).to(device)
    levels = torch.randint(1, 32, (batch, 3))

    def step_fn(model: torch.nn.Module) -> Callable[[], object]:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            out = model(masks, levels)
            target = out.targets.unsqueeze(1).expand_as(out.logits)
            loss = F.binary_cross_entropy_with_logits(out.logits, target) + out.vq_aux.loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    mem = peak_mib(step_fn(ours), device)
    counter = FlopCounterMode(display=False)
    with counter:
        step_fn(ours)()
    gflop = counter.get_total_flops() / 1e9
    t_ours, t_base, cpu_ratio = compare(step_fn(ours), step_fn(baseline), device, reps)
    row = (
        "tiny",
        f"train step ({gflop:.1f} GFLOP)",
        str(batch),
        f"{t_ours:.3f} s",
        f"{t_base:.3f} s",
        f"{t_base / t_ours:.2f}x",
        f"{cpu_ratio:.2f}x",
        f"{mem:.0f}",
    )
    print(" | ".join(row), flush=True)
    return [row]


def main() -> None:
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ and sys.platform == "linux":
        # A fixed mmap threshold makes glibc return freed tensor memory to the OS, so RSS peaks are honest.
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny preset only, few repetitions (< 1 min)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument(
        "--large-batch", type=int, nargs="*", default=[1], help="batches for the large preset"
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    reps = 3 if args.quick else 7
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"device {device}, dtype {args.dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {load:.1f}"
    )
    header = (
        "preset",
        "op",
        "batch",
        "ours masks/s",
        "baseline masks/s",
        "ratio",
        "CPU-time ratio",
        "peak MiB",
    )
    print(" | ".join(header))
    rows = bench_inference("tiny", [1, 16], device, dtype, reps)
    rows += bench_train_step(8 if args.quick else 32, device, 1 if args.quick else 5)
    if not args.quick and args.large_batch:
        rows += bench_inference("large", args.large_batch, device, dtype, 1)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
