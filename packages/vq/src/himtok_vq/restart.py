"""Dead-code restart: codes that stopped being used are moved onto vectors of the current batch.

Usage is tracked as an exponential moving average of each code's count per batch (``vq.usage_ema``,
decay ``vq.usage_decay``). Inside ``VectorQuantizer.forward`` (training mode, ``dead_code_threshold`` set) the
restart runs *before* the nearest-code search, so a revived code can be picked in the same batch and the
autograd graph never sees a codebook row change under it; the usage update runs after the search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from himtok_vq.distributed import all_reduce_sum, broadcast_, is_distributed

if TYPE_CHECKING:
    from himtok_vq.quantizer import VectorQuantizer


@torch.no_grad()
def update_usage(vq: VectorQuantizer, counts: Tensor) -> None:
    """Fold one batch's code counts [K] into ``vq.usage_ema``; counts are summed over ranks first."""
    counts = all_reduce_sum(counts.to(device=vq.usage_ema.device, dtype=vq.usage_ema.dtype))
    vq.usage_ema.mul_(vq.usage_decay).add_(counts, alpha=1.0 - vq.usage_decay)


@torch.no_grad()
def restart_dead_codes(vq: VectorQuantizer, vectors: Tensor, counts: Tensor | None = None) -> int:
    """Re-initialise the codes whose running usage is below ``vq.dead_code_threshold``.

    ``vectors`` are inputs of the current batch [N, d], already l2-normalised when ``vq.l2_norm``. When
    ``counts`` (the codes' counts in the batch, [K]) is given, the running usage is updated with it first.
    A dead code becomes a randomly picked batch vector (plus 1e-3 Gaussian noise); with a reparameterised
    codebook the table row is solved so that the *effective* code ``embedding_proj(row)`` equals it. Its
    running usage is reset to ``max(1, 2 * threshold)``.

    Under torch.distributed the counts are summed over ranks (so every rank sees the same dead codes) and rank
    0's replacement vectors are broadcast, so every rank ends with the same codebook. Returns the number of
    codes restarted (the same on every rank).
    """
    if vq.dead_code_threshold is None:
        raise ValueError("restart_dead_codes needs vq.dead_code_threshold to be set")
    if vectors.ndim != 2 or vectors.shape[-1] != vq.dim or vectors.shape[0] == 0:
        raise ValueError(f"vectors must have shape [N > 0, {vq.dim}], got {tuple(vectors.shape)}")
    if counts is not None:
        update_usage(vq, counts)
    dead = vq.usage_ema < vq.dead_code_threshold
    n_dead = int(dead.sum())
    if n_dead == 0:
        return 0
    weight = vq.embedding.weight
    vectors = vectors.detach().float()
    picks = torch.randint(0, vectors.shape[0], (n_dead,), device=vectors.device)
    targets = vectors[picks] + 1e-3 * torch.randn(n_dead, vq.dim, device=vectors.device)
    targets = targets.to(weight.device)
    if is_distributed():
        broadcast_(targets, src=0)
    if vq.embedding_proj is not None:
        # The effective code is P e (P = embedding_proj.weight, d x d): solve P e = target for the table rows.
        proj_pinv = torch.linalg.pinv(vq.embedding_proj.weight.detach().float())
        rows = targets @ proj_pinv.t()
    else:
        rows = targets
    # Write through .data (no version bump): a graph still pending from an earlier forward (gradient
    # accumulation) saved this table, and a bump would make its backward raise. Rows of codes that were not
    # chosen get no gradient there, so their new values change nothing in it.
    weight.data[dead] = rows.to(weight.dtype)
    # A grace period: a revived code is not dead again before it had a chance to be picked.
    vq.usage_ema[dead] = max(1.0, 2.0 * vq.dead_code_threshold)
    return n_dead
