"""Quantize many 12-d vectors against 1024 codes on CPU: himtok-vq against vector-quantize-pytorch.

    uv run python packages/vq/benchmarks/bench_quantize.py            # 2^20 vectors, d=12, K=1024
    uv run python packages/vq/benchmarks/bench_quantize.py --quick    # 2^16 vectors, well under a minute

Both quantizers run in eval mode under ``torch.no_grad`` on the same inputs, with cosine similarity
(l2-normalised inputs and codes), the same K and d, and the *same* codebook: the peer's table is overwritten
with himtok-vq's normalised codebook, so the two must return the same indices (the agreement is printed; only
float32 near-ties may differ). The peer is ``vector_quantize_pytorch.VectorQuantize(use_cosine_sim=True)``;
it builds [N, K] distance and one-hot matrices, so it is fed ``--peer-batch`` vectors per call (2^16 by
default: one call on 2^20 vectors needed more than 16 GB), while himtok-vq takes all N in one call.

The two are measured in the same process, alternating run by run so that a busy machine slows both alike.
Time: best and median wall time over ``--repeats`` runs. Memory: the peak resident memory a run adds above
what the process held before it (Linux ``VmHWM``, reset before each run through ``/proc/self/clear_refs``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

K, DIM, TOKENS = 1024, 12, 32


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(run: Callable[[], torch.Tensor]) -> tuple[float, float, torch.Tensor]:
    """(seconds, extra peak MiB, indices) of one call."""
    can_reset = _reset_peak()
    base = _status_kib("VmRSS")
    start = time.perf_counter()
    with torch.no_grad():
        indices = run()
    seconds = time.perf_counter() - start
    extra = (_status_kib("VmHWM") - base) / 1024 if can_reset else float("nan")
    return seconds, extra, indices


def build(
    n: int, seed: int, chunk_rows: int | None, peer_batch: int
) -> dict[str, Callable[[], torch.Tensor]]:
    from himtok_vq import VectorQuantizer

    torch.manual_seed(seed)
    ours = VectorQuantizer(codebook_size=K, dim=DIM, l2_norm=True).eval()
    with torch.no_grad():  # a spread-out codebook, so that the search has real work to do
        ours.embedding.weight.normal_()
    ours.search_chunk_rows = chunk_rows
    z = torch.randn(n // TOKENS, TOKENS, DIM, generator=torch.Generator().manual_seed(seed + 1))
    runs = {"himtok_vq": lambda: ours(z)[1]}
    try:
        from vector_quantize_pytorch import VectorQuantize
    except ImportError:
        print("vector-quantize-pytorch is not installed: measuring himtok_vq alone", file=sys.stderr)
        return runs
    peer = VectorQuantize(dim=DIM, codebook_size=K, use_cosine_sim=True).eval()
    with torch.no_grad():
        peer._codebook.embed.copy_(ours.normalized_codebook()[None])
    rows = max(1, peer_batch // TOKENS)
    # The peer materialises [N, K] distances and a [N, K] one-hot: one call on 2^20 vectors took more than
    # 16 GB here, so it gets the vectors in batches (its indices are concatenated).
    runs["vector_quantize_pytorch"] = lambda: torch.cat(
        [peer(z[i : i + rows])[1] for i in range(0, len(z), rows)]
    )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2^16 vectors instead of 2^20")
    parser.add_argument("--n", type=int, default=None, help="number of vectors (a multiple of 32)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per implementation (3)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--chunk-rows", type=int, default=None, help="himtok_vq search chunk (default: auto)")
    parser.add_argument(
        "--peer-batch", type=int, default=2**16, help="vectors per vector-quantize-pytorch call (2^16)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    n = args.n or (2**16 if args.quick else 2**20)
    repeats = args.repeats or 3
    if n % TOKENS:
        parser.error(f"--n must be a multiple of {TOKENS}")
    if args.threads:
        torch.set_num_threads(args.threads)

    runs = build(n, seed=0, chunk_rows=args.chunk_rows, peer_batch=args.peer_batch)
    for run in runs.values():  # warm-up: first-call allocations and kernel selection
        with torch.no_grad():
            run()
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {name: [] for name in runs}
    peaks: dict[str, float] = dict.fromkeys(runs, 0.0)
    indices: dict[str, torch.Tensor] = {}
    for _ in range(repeats):
        for name, run in runs.items():  # alternate, so background load hits both alike
            seconds, extra, result = measure(run)
            times[name].append(seconds)
            peaks[name] = max(peaks[name], extra)
            indices[name] = result
    load_after = os.getloadavg()[0]

    print(
        f"quantize {n:,} vectors, d={DIM}, K={K}, cosine, eval + no_grad | torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"load avg {load_before:.1f} -> {load_after:.1f}, best/median of {repeats}"
    )
    print(f"{'implementation':<26}{'vectors/s (best)':>18}{'(median)':>12}{'peak extra MiB':>16}")
    results = {}
    for name in runs:
        best, median = min(times[name]), statistics.median(times[name])
        results[name] = {
            "vectors_per_s_best": n / best,
            "vectors_per_s_median": n / median,
            "seconds": times[name],
            "peak_extra_mib": peaks[name],
        }
        print(f"{name:<26}{n / best:>18,.0f}{n / median:>12,.0f}{peaks[name]:>16,.1f}")
    summary: dict[str, object] = {
        "n": n,
        "dim": DIM,
        "codebook_size": K,
        "threads": torch.get_num_threads(),
        "peer_batch": args.peer_batch,
    }
    if "vector_quantize_pytorch" in runs:
        ours, peer = results["himtok_vq"], results["vector_quantize_pytorch"]
        speed = ours["vectors_per_s_best"] / peer["vectors_per_s_best"]
        speed_median = ours["vectors_per_s_median"] / peer["vectors_per_s_median"]
        memory = peer["peak_extra_mib"] / max(ours["peak_extra_mib"], 1e-9)
        agreement = indices["himtok_vq"].reshape(-1) == indices["vector_quantize_pytorch"].reshape(-1)
        agreement_rate = float(agreement.double().mean())
        print(
            f"ratio himtok_vq / vector_quantize_pytorch: speed {speed:.2f}x (median {speed_median:.2f}x), "
            f"peak extra memory {1 / memory:.4f}x ({memory:,.0f}x less); same indices for {agreement_rate:.6%}"
        )
        summary.update(
            speed_ratio=speed, speed_ratio_median=speed_median, memory_ratio=memory, agreement=agreement_rate
        )
    summary["results"] = results
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
