"""Exact nearest-code search in float32, in row chunks that bound memory.

The distance is the official HiMTok/TiTok expansion ``||z||^2 + ||c||^2 - 2 z.c`` evaluated in float32, so the
argmin (first index on ties) is the official one. Rather than materialising the [N, K] distance matrix
(4 GiB for 2^20 vectors and 1024 codes), rows are processed in chunks that stay in cache: per chunk one
broadcast add writes ``||z||^2 + ||c||^2`` into a reused buffer, one in-place ``addmm`` subtracts ``2 z.c``
(the factor 2 is exact in binary, so up to the BLAS kernel's own rounding order the value is the official
``a - 2 * (z @ C^T)``; bit-identical on the CPU we measured), then the argmin is taken.

On CPU the argmin is two-level, because torch's ``argmin`` over a long contiguous row is about ten times slower
than ``amin``: the codes are split into groups of ``GROUP`` (the row is padded with +inf to a multiple of it),
``amin`` gives each group's minimum, a short ``argmin`` picks the first group holding the row minimum and a
second one the first position of it inside that group. Both pick first occurrences, so the result is exactly
``argmin`` over the whole row, ties and NaN included.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Chunk sizes, in float32 distances per chunk. Single-threaded, about 1 MiB is fastest (the block stays in L2
# cache; 16x larger blocks ran about 2.5x slower per vector). With several intra-op threads every op of a chunk
# is an OpenMP parallel region, and on a busy machine each region can cost a scheduler time slice while the
# team waits for a descheduled thread: with 256-row chunks 2 threads ran about 10x *slower* than 1 on our
# loaded 2-core box, 4096-row chunks about 3x faster than 256-row ones. So multi-threaded runs use 16 MiB
# blocks (fewer, bigger regions). On accelerators the per-call overhead dominates, so chunks are big there.
CPU_CHUNK_ELEMENTS = 1 << 18
CPU_PARALLEL_CHUNK_ELEMENTS = 1 << 22
DEVICE_CHUNK_ELEMENTS = 1 << 26
GROUP = 32


def default_chunk_rows(codebook_size: int, device: torch.device) -> int:
    """Rows per chunk so that a chunk's distance block holds about the budgets above (in floats)."""
    if device.type != "cpu":
        budget = DEVICE_CHUNK_ELEMENTS
    else:
        budget = CPU_CHUNK_ELEMENTS if torch.get_num_threads() == 1 else CPU_PARALLEL_CHUNK_ELEMENTS
    return max(1, budget // max(1, codebook_size))


@torch.no_grad()
def nearest_code_indices(vectors: Tensor, codebook: Tensor, chunk_rows: int | None = None) -> Tensor:
    """Indices [N] (int64) of the nearest rows of ``codebook`` [K, d] for ``vectors`` [N, d].

    Both are used as given (normalise them first for a cosine search) and computed in float32 whatever the
    autocast state. ``chunk_rows`` (default: :func:`default_chunk_rows`) bounds the memory to
    ``chunk_rows * K`` floats.
    """
    if vectors.ndim != 2 or codebook.ndim != 2 or vectors.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"expected vectors [N, d] and codebook [K, d], got {tuple(vectors.shape)} and {tuple(codebook.shape)}"
        )
    n, k = vectors.shape[0], codebook.shape[0]
    device = vectors.device
    rows = chunk_rows if chunk_rows is not None else default_chunk_rows(k, device)
    if rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {rows}")
    with torch.autocast(device_type=device.type, enabled=False):
        vectors = vectors.float()
        codebook = codebook.to(device=device, dtype=torch.float32)
        z_sq = vectors.pow(2).sum(dim=1, keepdim=True)
        c_sq = codebook.pow(2).sum(dim=1)
        codebook_t = codebook.t()
        indices = torch.empty(n, dtype=torch.long, device=device)
        groups = -(-k // GROUP) if device.type == "cpu" else 1
        width = groups * GROUP if groups > 1 else k
        block = torch.empty(min(rows, n), width, dtype=torch.float32, device=device)
        block[:, k:] = float("inf")  # padding columns never win
        positions = torch.arange(block.shape[0], device=device)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            padded = block[: stop - start]
            dist = padded[:, :k]
            torch.add(z_sq[start:stop], c_sq, out=dist)
            dist.addmm_(vectors[start:stop], codebook_t, alpha=-2.0)
            if groups == 1:
                torch.argmin(dist, dim=1, out=indices[start:stop])
                continue
            grouped = padded.view(stop - start, groups, GROUP)
            group = grouped.amin(dim=2).argmin(dim=1)
            inner = grouped[positions[: stop - start], group].argmin(dim=1)
            torch.add(inner, group, alpha=GROUP, out=indices[start:stop])
    return indices
