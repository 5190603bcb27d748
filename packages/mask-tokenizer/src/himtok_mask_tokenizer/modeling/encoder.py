"""ViT mask encoder: [cls, patches, latent tokens] -> one ``token_dim`` vector per latent token.

Two output layouts:

* ``"official"``: the official legacy path. The ``[B, T, width]`` latents are *re-viewed* (no permute) as
  ``[B, width, T, 1]`` before the 1x1 ``conv_out``, so output t mixes feature dims {T*k + t} of every latent
  and no output is causal.
* ``"causal"``: ``conv_out`` projects each latent on its own; with the causal attention mask, output k
  depends only on latent tokens 0..k.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from himtok_mask_tokenizer.modeling.transformer import build_blocks, normal_parameter


def encoder_attention_mask(num_image_tokens: int, num_latent_tokens: int) -> Tensor:
    """Bool [S, S] mask, True = blocked (``nn.MultiheadAttention`` semantics, as stored officially).

    Row i blocks columns j >= max(num_image_tokens, i + 1): image tokens never see latents; latents see
    every image token and the latents up to themselves.
    """
    size = num_image_tokens + num_latent_tokens
    rows = torch.arange(size).unsqueeze(1)
    cols = torch.arange(size).unsqueeze(0)
    return (cols >= num_image_tokens) & (cols > rows)


class ConvStem(nn.Module):
    """Patch embedding by log2(patch) stride-2 3x3 convs (16, 32, ... channels, then `width`), GELU between.

    A linear patch embedding sees each patch alone; the stem sees across patch borders and builds local shape
    features (edges, corners, thin parts) before the transformer, which small models trained briefly lack.
    """

    def __init__(self, in_channels: int, width: int, patch_size: int, base_channels: int = 16) -> None:
        super().__init__()
        steps = round(math.log2(patch_size))
        if patch_size < 2 or 2**steps != patch_size:
            raise ValueError(f"the conv stem downsamples by a power of two >= 2, got patch_size {patch_size}")
        channels = [in_channels] + [min(width, base_channels << i) for i in range(steps - 1)] + [width]
        self.layers = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], kernel_size=3, stride=2, padding=1) for i in range(steps)
        )

    def forward(self, x: Tensor) -> Tensor:
        for i, conv in enumerate(self.layers):
            x = conv(x)
            if i < len(self.layers) - 1:
                x = F.gelu(x)
        return x


class MaskEncoder(nn.Module):
    def __init__(
        self,
        *,
        image_size: int,
        in_channels: int,
        patch_size: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        num_latent_tokens: int,
        token_dim: int,
        layout: str,
        stem: str = "patch",
    ) -> None:
        super().__init__()
        self.layout = layout
        self.width = width
        self.num_latent_tokens = num_latent_tokens
        self.token_dim = token_dim
        grid = image_size // patch_size
        self.num_image_tokens = 1 + grid * grid
        scale = width**-0.5
        self.class_embedding = normal_parameter(scale, 1, width)
        self.positional_embedding = normal_parameter(scale, self.num_image_tokens, width)
        self.latent_token_positional_embedding = normal_parameter(scale, num_latent_tokens, width)
        # Persistent, because the official state dict carries it.
        self.attn_mask: Tensor
        self.register_buffer("attn_mask", encoder_attention_mask(self.num_image_tokens, num_latent_tokens))
        self.patch_embed: nn.Module
        if stem == "conv":
            self.patch_embed = ConvStem(in_channels, width, patch_size)
        else:
            self.patch_embed = nn.Conv2d(
                in_channels, width, kernel_size=patch_size, stride=patch_size, bias=True
            )
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = build_blocks(width, depth, heads, mlp_ratio)
        self.ln_post = nn.LayerNorm(width)
        self.conv_out = nn.Conv2d(width, token_dim, kernel_size=1, bias=True)

    def forward(self, pixels: Tensor, latent_tokens: Tensor) -> Tensor:
        """``pixels`` [B, C, S, S], ``latent_tokens`` [T, width] -> latents before quantization [B, T, token_dim]."""
        batch = pixels.shape[0]
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(batch, 1, -1).to(x.dtype), x], dim=1)
        x = x + self.positional_embedding.to(x.dtype)
        latents = (latent_tokens + self.latent_token_positional_embedding).to(x.dtype)
        x = torch.cat([x, latents.expand(batch, -1, -1)], dim=1)
        x = self.ln_pre(x)
        allowed = ~self.attn_mask
        for block in self.transformer:
            x = block(x, allowed)
        latents = self.ln_post(x[:, self.num_image_tokens :])
        return self.project(latents)

    def project(self, latents: Tensor) -> Tensor:
        """``ln_post`` output [B, T, width] -> [B, T, token_dim] in the configured layout."""
        weight = self.conv_out.weight.flatten(1)
        if self.layout == "official":
            # Legacy re-view: the contiguous [B, T, width] buffer is read as [B, width, T] (no permute).
            batch = latents.shape[0]
            latents = latents.reshape(batch, self.width, self.num_latent_tokens).transpose(1, 2)
        return F.linear(latents, weight, self.conv_out.bias)
