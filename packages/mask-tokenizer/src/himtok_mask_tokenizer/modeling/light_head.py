"""A light convolutional pixel head for CPU-size models: a patch un-embedding plus a small upsampling path.

The patch un-embedding (one linear map per grid cell, as `LinearPixelHead`) gives a blocky first guess; a few
cheap steps (nearest x2, 3x3 conv, GELU, channels halving) add what a grid of independent patches cannot draw:
edges that cross patch borders, thin parts, round outlines. The convolutional path starts at zero, so a new
model begins as the linear head and learns the refinement.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

MIN_CHANNELS = 8


def light_head_channels(hidden_channels: int, steps: int) -> list[int]:
    """Channels at the grid and after each doubling: halving from `hidden_channels`, at least 8."""
    return [max(hidden_channels >> i, MIN_CHANNELS) for i in range(steps + 1)]


class LightPixelHead(nn.Module):
    """Feature grid [N, z_channels, G, G] -> raw maps [N, out_channels, G * upscale, G * upscale]."""

    def __init__(self, *, z_channels: int, upscale: int, hidden_channels: int, out_channels: int = 1) -> None:
        super().__init__()
        steps = round(math.log2(upscale))
        if upscale < 1 or 2**steps != upscale:
            raise ValueError(f"the light pixel head upsamples by a power of two, got {upscale}")
        self.upscale = upscale
        self.proj = nn.Conv2d(z_channels, out_channels * upscale * upscale, kernel_size=1, bias=True)
        channels = light_head_channels(hidden_channels, steps)
        self.conv_in = nn.Conv2d(z_channels, channels[0], kernel_size=3, padding=1)
        self.up = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], kernel_size=3, padding=1) for i in range(steps)
        )
        self.conv_out = nn.Conv2d(channels[-1], out_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        assert self.conv_out.bias is not None
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor) -> Tensor:
        base = F.pixel_shuffle(self.proj(x), self.upscale)
        h = F.gelu(self.conv_in(x))
        for conv in self.up:
            h = F.gelu(conv(F.interpolate(h, scale_factor=2.0, mode="nearest")))
        return base + self.conv_out(h)
