"""Level labels: the coarse targets that a reconstruction from l tokens is trained against."""

from __future__ import annotations

import torch
from torch import Tensor

from himtok_hml_loss.blocks import run_blocks
from himtok_hml_loss.levels import check_levels
from himtok_hml_loss.masks import as_float_masks
from himtok_hml_loss.operators import level_operators
from himtok_hml_loss.schedules import check_schedule


def _apply_shared(ops_h: Tensor, ops_w: Tensor, masks: Tensor) -> Tensor:
    """Labels for levels shared by the batch: ``ops_h [n, H, H]``, ``ops_w [n, W, W]``, masks ``[B, H, W]``."""
    b, h, w = masks.shape
    n = ops_h.shape[0]
    # One GEMM applies every level's column operator: [B*H, W] @ [W, n*W].
    cols = ops_w.transpose(1, 2).permute(1, 0, 2).reshape(w, n * w)
    rows_first = (masks.reshape(b * h, w) @ cols).reshape(b, h, n, w)
    # Then one batched GEMM per level over the rows: [n, H, H] @ [n, H, B*W].
    stacked = rows_first.permute(2, 1, 0, 3).reshape(n, h, b * w)
    out = torch.bmm(ops_h, stacked).reshape(n, h, b, w)
    return out.permute(2, 0, 1, 3)


def _apply_per_sample(ops_h: Tensor, ops_w: Tensor, masks: Tensor) -> Tensor:
    """Labels for per-sample levels: ``ops_h [B, n, H, H]``, ``ops_w [B, n, W, W]``, masks ``[B, H, W]``."""
    return ops_h @ masks[:, None] @ ops_w.transpose(-1, -2)


def _apply_blocked(ops_h: Tensor, ops_w: Tensor, levels: Tensor, masks: Tensor) -> Tensor:
    """CPU path: a few samples at a time on the block pool, each a chain of small single-threaded GEMMs."""
    b, h, w = masks.shape
    out = masks.new_empty(b, levels.shape[-1], h, w)
    rows = max(1, (1 << 18) // (levels.shape[-1] * h * w))
    shared = levels.ndim == 1
    row_ops_h = ops_h[levels] if shared else None
    row_ops_wt = ops_w[levels].transpose(-1, -2) if shared else None

    def work(start: int) -> None:
        stop = min(b, start + rows)
        oh = row_ops_h if shared else ops_h[levels[start:stop]]
        owt = row_ops_wt if shared else ops_w[levels[start:stop]].transpose(-1, -2)
        torch.matmul(oh, masks[start:stop, None] @ owt, out=out[start:stop])

    run_blocks(work, range(0, b, rows), masks.device)
    return out


def level_labels(masks: Tensor, levels: Tensor, schedule: str = "paper", *, max_len: int = 32) -> Tensor:
    """Targets ``[B, n, H, W]`` (float32, in [0, 1]) for ``levels`` (``[n]`` or ``[B, n]``) of ``masks``.

    ``masks`` is ``[B, H, W]`` (or ``[B, 1, H, W]``) in [0, 1]. Level ``max_len`` returns the mask itself. The
    Gaussian schedules treat everything outside the image as 0, like ``scipy.ndimage.gaussian_filter(...,
    mode="constant")``, so mass near the border leaks out. See :mod:`himtok_hml_loss.schedules`.
    """
    check_schedule(schedule)
    masks = as_float_masks(masks)
    levels = check_levels(levels, masks.shape[0], max_len).to(masks.device)
    return compute_level_labels(masks, levels, schedule, max_len)


def compute_level_labels(
    masks: Tensor, levels: Tensor, schedule: str, max_len: int, *, clamp: bool = True
) -> Tensor:
    """:func:`level_labels` without input checks: float32 masks ``[B, H, W]``, int64 levels on their device.

    The result may be a non-contiguous view. ``clamp=False`` skips the final clamp to [0, 1], which only
    removes rounding excess of a few ulps (the loss does not need it).
    """
    b, h, w = masks.shape
    ops_h = level_operators(schedule, h, max_len, masks.device)
    ops_w = ops_h if w == h else level_operators(schedule, w, max_len, masks.device)
    if levels.shape[-1] == 0:
        return masks.new_zeros(b, 0, h, w)
    with torch.autocast(masks.device.type, enabled=False), torch.no_grad():
        if masks.device.type == "cpu":
            labels = _apply_blocked(ops_h, ops_w, levels, masks)
        elif levels.ndim == 1:
            labels = _apply_shared(ops_h[levels], ops_w[levels], masks)
        else:
            labels = _apply_per_sample(ops_h[levels], ops_w[levels], masks)
        if schedule == "official":
            peak = labels.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
            is_full = (levels == max_len)[..., None, None]
            labels = labels / torch.where(is_full, torch.ones_like(peak), peak)
        # Rounding can push a weighted average a few ulps past 1.
        return labels.clamp_(0.0, 1.0) if clamp else labels
