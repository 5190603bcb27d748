"""A straightforward per-sample HML, the baseline of the benchmark.

It loops over samples and levels like the official code loops over levels: for every (sample, level) it builds
the Gaussian kernel, blurs that one mask (zero padding) and computes BCE + Dice on that one map. With the
default separable blur it is the same maths as ``HierarchicalMaskLoss(schedule="paper", dice="per_sample")``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def blur_one(mask: Tensor, sigma: float) -> Tensor:
    """Zero-padded separable Gaussian blur of one ``[H, W]`` mask, radius int(3 sigma + 0.5)."""
    radius = int(3.0 * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = mask[None, None]
    x = F.conv2d(x, kernel.view(1, 1, 1, -1), padding=(0, radius))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    return x[0, 0]


def blur_one_2d(mask: Tensor, sigma: float) -> Tensor:
    """The official code's way: one 2-D kernel with (2 ceil(3 sigma) + 1)^2 taps, zero padding.

    (Its radius rule differs from scipy's, so values differ slightly from :func:`blur_one`.)
    """
    radius = math.ceil(3.0 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps[None, :] ** 2 + taps[:, None] ** 2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    return F.conv2d(mask[None, None], kernel[None, None], padding=radius)[0, 0]


def per_sample_hml(
    logits: Tensor,
    masks: Tensor,
    levels: list[int],
    max_len: int = 32,
    eps: float = 1.0,
    blur: Callable[[Tensor, float], Tensor] = blur_one,
) -> Tensor:
    """Sum over levels of the batch-mean (BCE + Dice); ``logits [B, n+1, H, W]``, full level first."""
    batch = masks.shape[0]
    total = logits.new_zeros(())
    # unbind, not logits[b, k]: indexing would make autograd build a full-size gradient per map (O(B^2)).
    for sample_logits, mask in zip(logits.unbind(0), masks.unbind(0), strict=True):
        for z, level in zip(sample_logits.unbind(0), [max_len, *levels], strict=True):
            target = mask if level == max_len else blur(mask, 100.0 / (level + 1) - 2.0).clamp(0, 1)
            z = z.float()
            bce = F.binary_cross_entropy_with_logits(z, target)
            p = torch.sigmoid(z)
            dice = 1 - (2 * (p * target).sum() + eps) / (p.sum() + target.sum() + eps)
            total = total + (bce + dice) / batch
    return total
