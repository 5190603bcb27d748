"""Dead-code restart: codes that stopped being used are moved onto vectors of the current batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import Tensor

if TYPE_CHECKING:
    from himtok_vq.quantizer import VectorQuantizer


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@torch.no_grad()
def restart_dead_codes(vq: VectorQuantizer, vectors: Tensor, counts: Tensor) -> int:
    """Update the running usage of ``vq`` and re-initialise codes whose usage fell below the threshold.

    ``vectors`` are the (normalised) inputs of the batch [N, d]; ``counts`` the codes' counts in it [K].
    Under torch.distributed the counts are summed over ranks and rank 0's replacement vectors are broadcast,
    so every rank ends with the same codebook. Returns the number of codes restarted.
    """
    counts = counts.to(vq.usage_ema.device)
    if _distributed():
        counts = counts.clone()
        dist.all_reduce(counts)
    vq.usage_ema.mul_(vq.usage_decay).add_(counts, alpha=1.0 - vq.usage_decay)
    assert vq.dead_code_threshold is not None
    dead = vq.usage_ema < vq.dead_code_threshold
    n_dead = int(dead.sum())
    if n_dead == 0:
        return 0
    picks = torch.randint(0, vectors.shape[0], (n_dead,), device=vectors.device)
    targets = vectors[picks].float()
    targets = targets + 1e-3 * torch.randn_like(targets)
    if _distributed():
        dist.broadcast(targets, src=0)
    weight = vq.embedding.weight
    if vq.embedding_proj is not None:
        # The effective code is P e; solve P e = target for the table rows (P is d x d).
        proj = vq.embedding_proj.weight.float()
        rows = torch.linalg.lstsq(proj, targets.t()).solution.t()
    else:
        rows = targets
    weight.data[dead] = rows.to(weight.dtype)
    vq.usage_ema[dead] = 1.0
    return n_dead
