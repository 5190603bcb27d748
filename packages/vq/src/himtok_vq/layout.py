"""Conversions between channel-last vectors and the official HiMTok ``[B, dim, 1, L]`` layout."""

from __future__ import annotations

from torch import Tensor


def from_official_layout(z: Tensor) -> Tensor:
    """``[B, dim, 1, L]`` (official encoder output) -> ``[B, L, dim]`` (channel-last)."""
    if z.ndim != 4 or z.shape[2] != 1:
        raise ValueError(f"expected the official layout [B, dim, 1, L], got {tuple(z.shape)}")
    return z.squeeze(2).transpose(1, 2)


def to_official_layout(z: Tensor) -> Tensor:
    """``[B, L, dim]`` (channel-last) -> ``[B, dim, 1, L]`` (official layout)."""
    if z.ndim != 3:
        raise ValueError(f"expected channel-last [B, L, dim], got {tuple(z.shape)}")
    return z.transpose(1, 2).unsqueeze(2)
