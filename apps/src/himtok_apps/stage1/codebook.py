"""Running code statistics of a training window: usage, perplexity and per-position entropy."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class CodeCounter:
    """Counts of each code at each token position, reset at every log line."""

    def __init__(self, num_positions: int, codebook_size: int) -> None:
        self.counts = torch.zeros(num_positions, codebook_size, dtype=torch.float64)

    def update(self, tokens: Tensor) -> None:
        """Add a batch of codes [B, T]."""
        positions, size = self.counts.shape
        tokens = tokens.detach().to("cpu", torch.long)
        flat = tokens + torch.arange(positions).unsqueeze(0) * size
        self.counts += torch.bincount(flat.reshape(-1), minlength=positions * size).view(positions, size)

    def reset(self) -> None:
        self.counts.zero_()

    def summary(self) -> dict[str, object]:
        """usage: fraction of codes used at any position; perplexity: exp(entropy) over all positions;
        entropy_bits: per-position entropy in bits (log2 K is the maximum)."""
        total = self.counts.sum(0)
        probs = total / total.sum().clamp_min(1.0)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
        per_position = self.counts / self.counts.sum(1, keepdim=True).clamp_min(1.0)
        bits = -(per_position * per_position.clamp_min(1e-12).log2()).sum(1)
        return {
            "usage": float((total > 0).float().mean()),
            "codes_used": int((total > 0).sum()),
            "perplexity": float(entropy.exp()),
            "entropy_bits": [round(abs(float(b)), 3) for b in bits],
            "max_entropy_bits": round(math.log2(self.counts.shape[1]), 3),
        }
