"""Level labels: the coarse targets that a reconstruction from l tokens is trained against.

A label is ``R_l @ mask @ C_l.T`` (see :mod:`himtok_hml_loss.operators`). Three ways to run the products:
levels shared by the batch on CPU (band tiles, blocks on the thread pool), shared levels on an accelerator
(one GEMM for all levels' columns, one batched GEMM for their rows), and per-sample levels (gathered
operators, batched products).
"""

from __future__ import annotations

import torch
from torch import Tensor

from himtok_hml_loss.blocks import run_blocks
from himtok_hml_loss.levels import check_levels
from himtok_hml_loss.masks import as_float_masks
from himtok_hml_loss.operators import Tile, level_operators, level_tiles
from himtok_hml_loss.schedules import check_schedule

LevelTiles = tuple[tuple[Tile, ...], ...]


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


def _apply_per_sample(ops_h: Tensor, ops_w: Tensor, levels: Tensor, masks: Tensor) -> Tensor:
    """Labels for per-sample levels ``[B, n]``: each sample's operators gathered, a batched product per block
    of samples (one block on CUDA)."""
    b, h, w = masks.shape
    out = masks.new_empty(b, levels.shape[-1], h, w)
    rows = b if masks.device.type != "cpu" else max(1, (1 << 19) // (levels.shape[-1] * h * w))

    def work(start: int) -> None:
        stop = min(b, start + rows)
        chosen = levels[start:stop]
        torch.matmul(
            ops_h[chosen], masks[start:stop, None] @ ops_w[chosen].transpose(-1, -2), out=out[start:stop]
        )

    run_blocks(work, range(0, b, rows), masks.device)
    return out


def _apply_banded(
    ops_h: Tensor, ops_w: Tensor, tiles_h: LevelTiles, tiles_w: LevelTiles, levels: list[int], masks: Tensor
) -> Tensor:
    """CPU path for levels shared by the batch.

    The batch is cut into blocks of a few samples, run on the block pool; within a block each level is
    applied to all its samples at once, tile by tile, skipping the zeros outside the Gaussian's band.
    """
    b, h, w = masks.shape
    out = masks.new_empty(b, len(levels), h, w)
    rows = max(1, (1 << 19) // (len(levels) * h * w))

    def work(start: int) -> None:
        stop = min(b, start + rows)
        masks_t = masks[start:stop].transpose(1, 2)  # [c, W, H]
        for k, level in enumerate(levels):
            # Columns first, on the transposed masks: (M A_w^T)^T = A_w M^T.
            cols_t = masks.new_empty(stop - start, w, h)
            for r0, r1, c0, c1 in tiles_w[level]:
                cols_t[:, r0:r1] = ops_w[level, r0:r1, c0:c1] @ masks_t[:, c0:c1]
            cols = cols_t.transpose(1, 2)  # [c, H, W]
            for r0, r1, c0, c1 in tiles_h[level]:
                out[start:stop, k, r0:r1] = ops_h[level, r0:r1, c0:c1] @ cols[:, c0:c1]

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
        if masks.device.type == "cpu" and levels.ndim == 1:
            tiles_h = level_tiles(schedule, h, max_len)
            tiles_w = tiles_h if w == h else level_tiles(schedule, w, max_len)
            labels = _apply_banded(ops_h, ops_w, tiles_h, tiles_w, levels.tolist(), masks)
        elif levels.ndim == 1:
            labels = _apply_shared(ops_h[levels], ops_w[levels], masks)
        else:
            labels = _apply_per_sample(ops_h, ops_w, levels, masks)
        if schedule == "official":
            peak = labels.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
            is_full = (levels == max_len)[..., None, None]
            labels = labels / torch.where(is_full, torch.ones_like(peak), peak)
        # Rounding can push a weighted average a few ulps past 1.
        return labels.clamp_(0.0, 1.0) if clamp else labels
