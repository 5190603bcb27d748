"""Per-map BCE and Dice statistics in float32, fused and processed in cache-sized chunks.

For predictions ``[B, K, H, W]`` and labels built from the full mask ``[B, H, W]`` (level 0) plus the partial
labels ``[B, K - 1, H, W]``, :func:`map_statistics` returns four ``[B, K]`` tensors: the mean BCE over pixels,
and the Dice sums I = sum p*y, P = sum p, Y = sum y. Everything the levels need reduces to these.

Written with plain tensor ops, autograd would keep a dozen full-size temporaries and walk over ~70 MB per
op at batch 64 x 4 x 256 x 256. Here the forward and the hand-written backward run over a few maps at a time,
so the temporaries stay in cache and nothing but the gradient itself is stored at full size; the backward
recomputes the sigmoid instead of saving it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from himtok_hml_loss.blocks import run_blocks

CHUNK_ELEMENTS = 1 << 17


def dice_from_sums(intersection: Tensor, pred_sum: Tensor, label_sum: Tensor, eps: float) -> Tensor:
    """1 - (2 I + eps) / (P + Y + eps): 0 for a perfect match, and 0 when prediction and label are both empty."""
    return 1.0 - (2.0 * intersection + eps) / (pred_sum + label_sum + eps)


def _blocks(batch: int, maps: int, pixels: int, device: torch.device) -> list[tuple[int, int, int, int]]:
    """(b0, b1, k0, k1) blocks of about CHUNK_ELEMENTS each: several whole rows, or a few maps of one row.

    On CUDA one block covers everything: the GPU wants few large kernels, not cache-sized ones.
    """
    if device.type != "cpu":
        return [(0, batch, 0, maps)]
    maps_per_block = max(1, CHUNK_ELEMENTS // pixels)
    if maps_per_block >= maps:
        rows = maps_per_block // maps
        return [(b, min(batch, b + rows), 0, maps) for b in range(0, batch, rows)]
    return [
        (b, b + 1, k, min(maps, k + maps_per_block))
        for b in range(batch)
        for k in range(0, maps, maps_per_block)
    ]


def _block_labels(full: Tensor, levels: Tensor, block: tuple[int, int, int, int]) -> Tensor:
    """``[maps in block, H * W]`` float32 labels of a block; map 0 of a row is the full level."""
    b0, b1, k0, k1 = block
    if k0 == 0:
        parts = torch.cat([full[b0:b1, None], levels[b0:b1, : k1 - 1]], dim=1)
    else:
        parts = levels[b0:b1, k0 - 1 : k1 - 1]
    return parts.reshape(-1, parts.shape[-2] * parts.shape[-1])


def _block_predictions(predictions: Tensor, block: tuple[int, int, int, int]) -> Tensor:
    b0, b1, k0, k1 = block
    part = predictions[b0:b1, k0:k1]
    return part.reshape(-1, part.shape[-2] * part.shape[-1]).float()


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot products of two ``[m, n]`` matrices."""
    return torch.linalg.vecdot(a, b)


class _FusedMapStatistics(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        predictions: Tensor,
        full_labels: Tensor,
        level_labels: Tensor,
        from_probs: bool,
        prob_eps: float,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        batch, maps, height, width = predictions.shape
        pixels = height * width
        stats = torch.empty(4, batch, maps, dtype=torch.float32, device=predictions.device)

        def work(block: tuple[int, int, int, int]) -> None:
            b0, b1, k0, k1 = block
            z = _block_predictions(predictions, block)
            y = _block_labels(full_labels, level_labels, block)
            if from_probs:
                q = z.clamp(prob_eps, 1.0 - prob_eps)
                log_q, log_not_q = torch.log(q), torch.log1p(-q)
                # -(y log q + (1 - y) log(1 - q)) = -log(1 - q) - y (log q - log(1 - q))
                bce_sum = -torch.addcmul(log_not_q, y, log_q.sub_(log_not_q)).sum(-1)
                p = z
            else:
                p = torch.sigmoid(z)
                # BCE with logits: softplus(z) - y z, per pixel (summing the two terms apart would cancel
                # catastrophically for large logits).
                bce_sum = torch.addcmul(F.softplus(z), y, z, value=-1.0).sum(-1)
            block_stats = torch.stack([bce_sum / pixels, _dot(p, y), p.sum(-1), y.sum(-1)])
            stats[:, b0:b1, k0:k1] = block_stats.view(4, b1 - b0, k1 - k0)

        run_blocks(work, _blocks(batch, maps, pixels, predictions.device), predictions.device)
        ctx.save_for_backward(predictions, full_labels, level_labels)
        ctx.from_probs, ctx.prob_eps = from_probs, prob_eps
        bce, intersection, pred_sum, label_sum = stats.unbind(0)
        ctx.mark_non_differentiable(label_sum)
        return bce, intersection, pred_sum, label_sum

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any, grad_bce: Tensor, grad_inter: Tensor, grad_pred_sum: Tensor, _grad_label_sum: Tensor
    ) -> tuple[Tensor, None, None, None, None]:
        predictions, full_labels, level_labels = ctx.saved_tensors
        batch, maps, height, width = predictions.shape
        grad = torch.empty_like(predictions)
        g_bce = grad_bce.float() / (height * width)
        g_inter, g_pred = grad_inter.float(), grad_pred_sum.float()
        from_probs, eps = ctx.from_probs, ctx.prob_eps

        def work(block: tuple[int, int, int, int]) -> None:
            b0, b1, k0, k1 = block
            z = _block_predictions(predictions, block)
            y = _block_labels(full_labels, level_labels, block)
            gb, gi, gp = (g[b0:b1, k0:k1].reshape(-1, 1) for g in (g_bce, g_inter, g_pred))
            # d(Dice sums)/dp = g_inter * y + g_pred
            d_dice = torch.addcmul(gp, y, gi)
            if from_probs:
                q = z.clamp(eps, 1.0 - eps)
                # dBCE/dq = (q - y) / (q (1 - q)), zero where the clamp is active (as torch.clamp's gradient);
                # the Dice uses the probabilities unclamped.
                d_bce = (q - y).div_(q * (1.0 - q)).mul_(gb).mul_((z > eps) & (z < 1.0 - eps))
                d_z = d_bce.add_(d_dice)
            else:
                p = torch.sigmoid(z)
                # dBCE/dz = p - y; dp/dz = p (1 - p)
                d_z = torch.addcmul((p - y).mul_(gb), d_dice, p * (1.0 - p))
            grad[b0:b1, k0:k1] = d_z.view(b1 - b0, k1 - k0, height, width)

        run_blocks(work, _blocks(batch, maps, height * width, predictions.device), predictions.device)
        return grad, None, None, None, None


def map_statistics(
    predictions: Tensor, full_labels: Tensor, level_labels: Tensor, *, from_probs: bool, prob_eps: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(bce_mean, I, P, Y)``, each ``[B, K]``; gradients flow to ``predictions`` only.

    ``predictions`` ``[B, K, H, W]`` (logits, or probabilities with ``from_probs``, any float dtype);
    ``full_labels`` ``[B, H, W]`` and ``level_labels`` ``[B, K - 1, H, W]`` float32 in [0, 1] (any strides).
    """
    return _FusedMapStatistics.apply(predictions, full_labels, level_labels, from_probs, prob_eps)


def map_statistics_reference(
    predictions: Tensor, full_labels: Tensor, level_labels: Tensor, *, from_probs: bool, prob_eps: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The same statistics with plain autograd ops: the definition :func:`map_statistics` is tested against."""
    labels = torch.cat([full_labels[:, None], level_labels], dim=1)
    z = predictions.float()
    if from_probs:
        bce = F.binary_cross_entropy(z.clamp(prob_eps, 1.0 - prob_eps), labels, reduction="none")
        p = z
    else:
        p = torch.sigmoid(z)
        bce = F.binary_cross_entropy_with_logits(z, labels, reduction="none")
    dims = (-2, -1)
    return bce.mean(dims), (p * labels).sum(dims), p.sum(dims), labels.sum(dims)
