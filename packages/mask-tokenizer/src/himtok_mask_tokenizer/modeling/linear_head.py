"""Cheap pixel head for CPU-size models: each grid cell predicts its own patch of pixels (patch un-embedding)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class LinearPixelHead(nn.Module):
    """Feature grid [N, z_channels, G, G] -> raw maps [N, out_channels, G * patch, G * patch]."""

    def __init__(self, *, z_channels: int, patch_size: int, out_channels: int = 1) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(z_channels, out_channels * patch_size * patch_size, kernel_size=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(self.proj(x), self.patch_size)
