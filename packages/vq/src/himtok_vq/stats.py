"""Running codebook statistics: usage counts per code and per token position, entropy, perplexity, dead codes.

``CodebookStats`` accumulates counts on this rank (``update``); ``synced()`` returns a copy whose counts are
summed over all ranks when torch.distributed is initialised (a collective: every rank must call it), and
``summary()`` reports the synced figures by default. Counts are int64, so they are exact however long they run.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from himtok_vq.distributed import all_reduce_sum
from himtok_vq.quantizer import check_indices


def _entropy_bits(counts: Tensor) -> Tensor:
    """Entropy in bits of the empirical distribution(s) along the last axis (0 where nothing was counted)."""
    counts = counts.double()
    total = counts.sum(dim=-1, keepdim=True)
    probs = counts / total.clamp_min(1.0)
    return -(probs * torch.log2(probs.clamp_min(1e-300))).sum(dim=-1)


class CodebookStats:
    """Running usage statistics of a K-code quantizer.

    Args:
        codebook_size: K.
        num_positions: when set, counts are also kept per token position: ``update`` then expects indices
            ``[..., L]`` with ``L <= num_positions`` (position t is the t-th entry of the last axis).
        device: where the counts live. Under torch.distributed it must suit the backend (CPU for gloo,
            CUDA for NCCL); indices from another device are counted there and moved.

    Example::

        stats = CodebookStats(1024, num_positions=32)
        for batch in loader:
            _, indices, _ = vq(encoder(batch))     # indices [B, 32]
            stats.update(indices)
        print(stats.summary())                     # all-reduced under torch.distributed
    """

    def __init__(
        self,
        codebook_size: int,
        num_positions: int | None = None,
        *,
        device: torch.device | str | None = None,
    ) -> None:
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be positive, got {codebook_size}")
        if num_positions is not None and num_positions < 1:
            raise ValueError(f"num_positions must be positive (or None), got {num_positions}")
        self.codebook_size = codebook_size
        self.num_positions = num_positions
        self.counts = torch.zeros(codebook_size, dtype=torch.int64, device=device)
        self.position_counts: Tensor | None = (
            torch.zeros(num_positions, codebook_size, dtype=torch.int64, device=device)
            if num_positions is not None
            else None
        )

    # ------------------------------------------------------------------ accumulation
    @torch.no_grad()
    def update(self, indices: Tensor) -> None:
        """Count a batch of code indices (integer tensor; ``[..., L]`` when tracking positions)."""
        check_indices(indices, self.codebook_size)
        if indices.numel() == 0:
            return
        indices = indices.long()
        k = self.codebook_size
        if self.position_counts is None:
            batch = torch.bincount(indices.reshape(-1), minlength=k)
            self.counts += batch.to(self.counts.device)
            return
        if indices.ndim == 0 or indices.shape[-1] > self.position_counts.shape[0]:
            raise ValueError(
                f"indices must have shape [..., L] with L <= num_positions={self.num_positions}, "
                f"got {tuple(indices.shape)}"
            )
        length = indices.shape[-1]
        keys = indices.reshape(-1, length) + k * torch.arange(length, device=indices.device)
        per_position = torch.bincount(keys.reshape(-1), minlength=length * k).view(length, k)
        per_position = per_position.to(self.position_counts.device)
        self.position_counts[:length] += per_position
        self.counts += per_position.sum(dim=0)

    def reset(self) -> None:
        """Forget everything counted so far."""
        self.counts.zero_()
        if self.position_counts is not None:
            self.position_counts.zero_()

    def synced(self) -> CodebookStats:
        """A copy whose counts are summed over all ranks (a plain copy without torch.distributed).

        A collective under torch.distributed: every rank must call it.
        """
        other = CodebookStats(self.codebook_size, self.num_positions, device=self.counts.device)
        other.counts = all_reduce_sum(self.counts)
        if self.position_counts is not None:
            other.position_counts = all_reduce_sum(self.position_counts)
        return other

    # ------------------------------------------------------------------ figures (on this object's counts)
    @property
    def total(self) -> int:
        """Number of indices counted."""
        return int(self.counts.sum())

    def usage(self) -> float:
        """Fraction of the codes used at least once."""
        return float((self.counts > 0).double().mean())

    def dead_codes(self, min_count: int = 1) -> int:
        """Number of codes counted fewer than ``min_count`` times (never used, by default)."""
        return int((self.counts < min_count).sum())

    def entropy_bits(self) -> float:
        """Entropy of the code distribution in bits (log2 K at most, for uniform use)."""
        return float(_entropy_bits(self.counts))

    def perplexity(self) -> float:
        """2 ** entropy: the number of equally used codes that would give the same entropy."""
        return 2.0 ** self.entropy_bits()

    def position_entropy_bits(self) -> Tensor:
        """Entropy in bits of the code distribution at each token position, float64 [num_positions]."""
        if self.position_counts is None:
            raise ValueError("per-position counts are not tracked: construct with num_positions=L")
        return _entropy_bits(self.position_counts)

    def position_usage(self) -> Tensor:
        """Fraction of the codes used at each token position, float64 [num_positions]."""
        if self.position_counts is None:
            raise ValueError("per-position counts are not tracked: construct with num_positions=L")
        return (self.position_counts > 0).double().mean(dim=-1)

    def summary(self, sync: bool = True) -> dict[str, float]:
        """Plain-number summary for logging; over all ranks when ``sync`` (a collective then)."""
        stats = self.synced() if sync else self
        out = {
            "total": float(stats.total),
            "usage": stats.usage(),
            "dead_codes": float(stats.dead_codes()),
            "entropy_bits": stats.entropy_bits(),
            "max_entropy_bits": math.log2(self.codebook_size),
            "perplexity": stats.perplexity(),
        }
        if stats.position_counts is not None:
            position_entropy = stats.position_entropy_bits()
            out["position_entropy_bits_mean"] = float(position_entropy.mean())
            out["position_entropy_bits_min"] = float(position_entropy.min())
        return out

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Tensor]:
        """This rank's counts, for checkpoints."""
        state = {"counts": self.counts.clone()}
        if self.position_counts is not None:
            state["position_counts"] = self.position_counts.clone()
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore counts saved by :meth:`state_dict` (shapes must match)."""
        expected = {"counts"} | ({"position_counts"} if self.position_counts is not None else set())
        if set(state) != expected:
            raise ValueError(f"expected keys {sorted(expected)}, got {sorted(state)}")
        if state["counts"].shape != self.counts.shape:
            raise ValueError(
                f"counts must have shape {tuple(self.counts.shape)}, got {tuple(state['counts'].shape)}"
            )
        self.counts.copy_(state["counts"])
        if self.position_counts is not None:
            if state["position_counts"].shape != self.position_counts.shape:
                raise ValueError(
                    f"position_counts must have shape {tuple(self.position_counts.shape)}, "
                    f"got {tuple(state['position_counts'].shape)}"
                )
            self.position_counts.copy_(state["position_counts"])

    def __repr__(self) -> str:
        return (
            f"CodebookStats(codebook_size={self.codebook_size}, num_positions={self.num_positions}, "
            f"total={self.total}, usage={self.usage():.3f}, entropy_bits={self.entropy_bits():.3f})"
        )
