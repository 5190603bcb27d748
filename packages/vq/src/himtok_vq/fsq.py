"""Finite scalar quantization (Mentzer et al., 2023): a collapse-free baseline with the VectorQuantizer API.

Each of ``len(levels)`` channels is bounded and rounded to one of ``levels[i]`` values; the implicit codebook
is the grid of all combinations, ``prod(levels)`` codes (1024 for the default ``[8, 8, 4, 4]``). There is no
codebook to learn and nothing can collapse, so no auxiliary loss: ``aux`` carries zero losses and the batch
perplexity and usage. With ``dim != len(levels)`` a linear layer projects in and another projects back out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from himtok_vq.quantizer import (
    QuantizerAux,
    check_indices,
    check_probs,
    check_vectors,
    code_histogram,
    perplexity_from_counts,
)


def _round_ste(x: Tensor) -> Tensor:
    """round(x) forward, identity backward."""
    return x + (x.round() - x).detach()


class FSQ(nn.Module):
    """``quantized, indices, aux = fsq(z)`` for ``z`` of shape ``[..., dim]``.

    Args:
        levels: number of values per channel; the codebook size is their product.
        dim: input/output dimension; defaults to ``len(levels)`` (no projections).
        eps: margin of the tanh bound, as in the reference implementation.

    Computed in float32 whatever the autocast state; ``quantized`` comes back in the dtype of ``z``.
    Without projections its values are the grid codes in [-1, 1], exactly ``indices_to_codes(indices)``.
    """

    def __init__(
        self, levels: Sequence[int] = (8, 8, 4, 4), dim: int | None = None, *, eps: float = 1e-3
    ) -> None:
        super().__init__()
        levels = [int(level) for level in levels]
        if not levels or any(level < 2 for level in levels):
            raise ValueError(f"levels must be a non-empty list of integers >= 2, got {levels}")
        self.levels = levels
        self.num_channels = len(levels)
        self.dim = dim if dim is not None else self.num_channels
        if self.dim < 1:
            raise ValueError(f"dim must be positive, got {self.dim}")
        self.codebook_size = math.prod(levels)
        self.eps = eps
        needs_projection = self.dim != self.num_channels
        self.project_in: nn.Module = (
            nn.Linear(self.dim, self.num_channels) if needs_projection else nn.Identity()
        )
        self.project_out: nn.Module = (
            nn.Linear(self.num_channels, self.dim) if needs_projection else nn.Identity()
        )
        basis = [math.prod(levels[:i]) for i in range(len(levels))]
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.int64), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.int64), persistent=False)

    _levels: Tensor
    _basis: Tensor

    # ------------------------------------------------------------------ grid
    def _half_width(self) -> Tensor:
        return (self._levels // 2).float()

    def bound(self, h: Tensor) -> Tensor:
        """Squash each channel into an interval holding exactly ``levels[i]`` integers after rounding."""
        levels = self._levels.float()
        half_l = (levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(h + shift) * half_l - offset

    def quantize(self, h: Tensor) -> Tensor:
        """Channels ``[..., len(levels)]`` -> grid codes in [-1, 1] (straight-through rounding)."""
        return _round_ste(self.bound(h)) / self._half_width()

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Grid codes ``[..., len(levels)]`` (as returned by :meth:`quantize`) -> int64 indices ``[...]``."""
        half_width = self._half_width()
        digits = (codes.float() * half_width + half_width).round().long()
        return (digits * self._basis).sum(dim=-1)

    def indices_to_codes(self, indices: Tensor, project_out: bool = True) -> Tensor:
        """Int indices ``[...]`` -> codes ``[..., dim]`` (or the grid codes ``[..., len(levels)]``)."""
        check_indices(indices, self.codebook_size)
        digits = (indices.long().unsqueeze(-1) // self._basis) % self._levels
        half_width = self._half_width()
        codes = (digits.float() - half_width) / half_width
        if not project_out:
            return codes
        with torch.autocast(device_type=codes.device.type, enabled=False):
            return self.project_out(codes)

    @property
    def codebook(self) -> Tensor:
        """The implicit codebook [K, dim]: every grid code, projected out (with gradients to the projection)."""
        return self.indices_to_codes(torch.arange(self.codebook_size, device=self._levels.device))

    def probs_to_codes(self, probs: Tensor) -> Tensor:
        """Soft codes ``probs @ codebook`` for probabilities ``[..., K]``."""
        check_probs(probs, self.codebook_size)
        return probs @ self.codebook.to(probs.dtype)

    # ------------------------------------------------------------------ forward
    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, QuantizerAux]:
        check_vectors(z, self.dim)
        with torch.autocast(device_type=z.device.type, enabled=False):
            h = self.project_in(z.float())
            codes = self.quantize(h)
            indices = self.codes_to_indices(codes.detach())
            quantized = self.project_out(codes)
        counts = code_histogram(indices, self.codebook_size)
        zero = torch.zeros((), device=z.device)
        aux = QuantizerAux(
            loss=zero,
            commitment_loss=zero,
            codebook_loss=zero,
            perplexity=perplexity_from_counts(counts),
            usage=(counts > 0).float().mean(),
        )
        return quantized.to(z.dtype), indices, aux
