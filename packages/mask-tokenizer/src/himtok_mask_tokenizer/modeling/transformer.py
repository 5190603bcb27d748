"""Pre-LN transformer block with the official parameter names, computed with batch-first SDPA.

The official code uses ``nn.MultiheadAttention`` (sequence-first, packed ``in_proj_weight`` with rows q|k|v).
``SelfAttention`` keeps exactly those parameter names and shapes, so official checkpoints load 1:1, but runs
``torch.nn.functional.scaled_dot_product_attention`` on batch-first tensors.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SelfAttention(nn.Module):
    """Multi-head self-attention. ``allowed`` is a bool mask [T, T] where True means "may attend"."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width ({width}) must be divisible by heads ({heads})")
        self.width = width
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor, allowed: Tensor | None = None) -> Tensor:
        batch, length, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed)
        out = out.transpose(1, 2).reshape(batch, length, width)
        return self.out_proj(out)


class ResidualAttentionBlock(nn.Module):
    """``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))`` with an exact (erf) GELU MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, hidden)),
                    ("gelu", nn.GELU()),
                    ("c_proj", nn.Linear(hidden, width)),
                ]
            )
        )

    def forward(self, x: Tensor, allowed: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), allowed)
        return x + self.mlp(self.ln_2(x))


def normal_parameter(std: float, *shape: int) -> nn.Parameter:
    """A parameter drawn from N(0, std^2) ."""
    return nn.Parameter(nn.init.normal_(torch.empty(*shape), std=std))


def build_blocks(width: int, depth: int, heads: int, mlp_ratio: float = 4.0) -> nn.ModuleList:
    """A plain ``ModuleList`` of blocks, so keys read ``transformer.{i}.*`` as in the official state dict."""
    return nn.ModuleList(ResidualAttentionBlock(width, heads, mlp_ratio) for _ in range(depth))
