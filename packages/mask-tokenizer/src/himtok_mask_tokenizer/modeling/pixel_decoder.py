"""The official MaskGIT-VQGAN pixel decoder (``maskgit_vqgan.Decoder``), quirks included.

* ``up`` is a ModuleList indexed by level but run from the last level to the first.
* Each up level but level 0 ends with nearest x2 upsampling and a 3x3 ``upsample_conv``.
* GroupNorm has 32 groups and eps 1e-6.
* A ResnetBlock whose channel count changes returns ``h + nin_shortcut(h)`` where h is its conv2 output:
  the block input is dropped (inherited from open-muse), and ``nin_shortcut`` maps out -> out channels.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from himtok_mask_tokenizer.config import GROUP_NORM_GROUPS


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(GROUP_NORM_GROUPS, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.changes_channels = in_channels != out_channels
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        if self.changes_channels:
            self.nin_shortcut = nn.Conv2d(out_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.changes_channels:
            return h + self.nin_shortcut(h)
        return h + x


class UpsamplingBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_res_blocks: int, upsample: bool) -> None:
        super().__init__()
        self.block = nn.ModuleList(
            ResnetBlock(in_channels if i == 0 else out_channels, out_channels) for i in range(num_res_blocks)
        )
        self.upsample = upsample
        if upsample:
            self.upsample_conv = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.block:
            x = block(x)
        if self.upsample:
            x = self.upsample_conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class ConvPixelDecoder(nn.Module):
    """Feature grid [N, z_channels, G, G] -> raw maps [N, out_channels, G * 2**(levels-1), same]."""

    def __init__(
        self,
        *,
        z_channels: int,
        hidden_channels: int,
        channel_mult: tuple[int, ...],
        num_res_blocks: int,
        out_channels: int,
    ) -> None:
        super().__init__()
        levels = len(channel_mult)
        block_in = hidden_channels * channel_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1, bias=True)
        self.mid = nn.ModuleList([ResnetBlock(block_in, block_in), ResnetBlock(block_in, block_in)])
        ups: list[UpsamplingBlock] = []
        for level in reversed(range(levels)):
            block_out = hidden_channels * channel_mult[level]
            ups.append(UpsamplingBlock(block_in, block_out, num_res_blocks, upsample=level != 0))
            block_in = block_out
        self.up = nn.ModuleList(reversed(ups))
        self.norm_out = _norm(block_in)
        self.conv_out = nn.Conv2d(block_in, out_channels, 3, padding=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_in(x)
        for block in self.mid:
            x = block(x)
        for block in reversed(self.up):
            x = block(x)
        return self.conv_out(F.silu(self.norm_out(x)))
