"""Partial levels: how many tokens a coarse reconstruction keeps, and how they are drawn.

A level ``l`` is a number of tokens, 1 <= l <= max_len. ``max_len`` itself is the full level. The HML draws a few
distinct partial levels (1 <= l < max_len) with p(l) proportional to 1 / (l + offset), so coarse levels, which have
the most to learn, are drawn most often.
"""

from __future__ import annotations

import torch
from torch import Tensor


def level_probabilities(max_len: int = 32, offset: float = 8.0) -> Tensor:
    """p(l) for l = 1..max_len-1 (float64, index 0 is l = 1), proportional to 1 / (l + offset)."""
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2 to have a partial level, got {max_len}")
    if offset <= -1:
        raise ValueError(f"offset must be greater than -1 so that every p(l) is positive, got {offset}")
    weights = 1.0 / (torch.arange(1, max_len, dtype=torch.float64) + offset)
    return weights / weights.sum()


def sample_levels(
    n_levels: int = 3,
    max_len: int = 32,
    offset: float = 8.0,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    *,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw ``n_levels`` distinct partial levels in 1..max_len-1 with p(l) proportional to 1 / (l + offset).

    The draw is sequential without replacement, and the result keeps the draw order: column 0 follows p(l)
    exactly, later columns follow p(l) conditioned on the earlier draws. With ``batch_size=None`` one set is
    drawn for the whole batch (shape ``[n_levels]``, as the official code does); otherwise each sample gets its
    own set (shape ``[batch_size, n_levels]``). The random numbers come from ``generator`` (on its device) and
    the result is moved to ``device`` (default: the generator's device, else CPU).
    """
    if n_levels < 0:
        raise ValueError(f"n_levels must be non-negative, got {n_levels}")
    if n_levels > max_len - 1:
        raise ValueError(f"cannot draw {n_levels} distinct partial levels from 1..{max_len - 1}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be positive or None, got {batch_size}")
    probs = level_probabilities(max_len, offset)
    draw_device = generator.device if generator is not None else torch.device("cpu")
    target = torch.device(device) if device is not None else draw_device
    rows = 1 if batch_size is None else batch_size
    if n_levels == 0:
        levels = torch.empty(rows, 0, dtype=torch.long, device=draw_device)
    else:
        weights = probs.to(device=draw_device, dtype=torch.float32).expand(rows, -1)
        levels = torch.multinomial(weights, n_levels, replacement=False, generator=generator) + 1
    levels = levels.to(target)
    return levels[0] if batch_size is None else levels


def check_levels(levels: Tensor, batch_size: int, max_len: int, *, check_values: bool = True) -> Tensor:
    """Validate ``levels`` (``[n]`` or ``[batch_size, n]``, integers in 1..max_len) and return it as int64.

    ``check_values=False`` skips the range check, which reads values back from the device.
    """
    if not isinstance(levels, Tensor):
        levels = torch.as_tensor(levels)
    if levels.dtype.is_floating_point or levels.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise ValueError(f"levels must be an integer tensor of token counts, got dtype {levels.dtype}")
    if levels.ndim not in (1, 2):
        raise ValueError(f"levels must have shape [n] or [B, n], got {tuple(levels.shape)}")
    if levels.ndim == 2 and levels.shape[0] != batch_size:
        raise ValueError(f"levels has {levels.shape[0]} rows but the batch has {batch_size} masks")
    levels = levels.long()
    if check_values and levels.numel() > 0 and bool(((levels < 1) | (levels > max_len)).any()):
        raise ValueError(
            f"levels must lie in 1..{max_len} (numbers of tokens), got values outside that range"
        )
    return levels


def prefix_lengths(levels: Tensor, batch_size: int, max_len: int) -> Tensor:
    """Token counts per decode, ``[B, n+1]``: column 0 is the full level (``max_len``), then ``levels``."""
    per_sample = levels.expand(batch_size, -1) if levels.ndim == 1 else levels
    full = torch.full((batch_size, 1), max_len, dtype=torch.long, device=levels.device)
    return torch.cat([full, per_sample], dim=1)
