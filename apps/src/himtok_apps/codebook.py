"""Code-usage figures of ``himtok_vq.CodebookStats``: what the trainers log in ``metrics.jsonl`` and the
tokenizer evaluations (stage-1 validation, ``apps/eval --tokenizer``) report."""

from __future__ import annotations

import math
from typing import Any

from himtok_vq import CodebookStats
from torch import Tensor


def code_report(stats: CodebookStats, sync: bool = True) -> dict[str, Any]:
    """usage / codes_used / dead_codes over all positions, perplexity (2 ** entropy), and the entropy in bits
    at each token position (``log2 K`` at most). Summed over ranks when ``sync`` (a collective then)."""
    stats = stats.synced() if sync else stats
    return {
        "usage": stats.usage(),
        "codes_used": stats.codebook_size - stats.dead_codes(),
        "perplexity": stats.perplexity(),
        "entropy_bits": [round(float(b), 3) for b in stats.position_entropy_bits()],
        "max_entropy_bits": round(math.log2(stats.codebook_size), 3),
    }


def restore_code_stats(stats: CodebookStats, state: dict[str, Tensor] | Tensor) -> None:
    """Load counts saved by a checkpoint; also reads the float [T, K] counts of older checkpoints."""
    if isinstance(state, Tensor):
        position_counts = state.round().long()
        state = {"counts": position_counts.sum(0), "position_counts": position_counts}
    stats.load_state_dict({k: v.to(stats.counts.device) for k, v in state.items()})
