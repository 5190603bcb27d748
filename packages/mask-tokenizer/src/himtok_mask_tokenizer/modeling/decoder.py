"""ViT token decoder: up to T embedded tokens + a grid of mask queries -> a feature grid for the pixel head.

Sequence order is [cls, G*G mask queries, T latents] with no attention mask, as officially. Fewer than T
tokens are handled by zero-filling *after* ``decoder_embed`` (the official inference and stage-1 semantics):
the padded positions are exact zeros, then every position gets its latent positional embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from himtok_mask_tokenizer.modeling.transformer import build_blocks, normal_parameter


class TokenDecoder(nn.Module):
    def __init__(
        self,
        *,
        grid_size: int,
        width: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        num_latent_tokens: int,
        token_dim: int,
        head_hidden: int,
        z_channels: int,
    ) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.width = width
        self.num_latent_tokens = num_latent_tokens
        scale = width**-0.5
        self.class_embedding = normal_parameter(scale, 1, width)
        self.positional_embedding = normal_parameter(scale, grid_size * grid_size + 1, width)
        self.mask_token = normal_parameter(scale, 1, 1, width)
        self.latent_token_positional_embedding = normal_parameter(scale, num_latent_tokens, width)
        self.decoder_embed = nn.Linear(token_dim, width, bias=True)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = build_blocks(width, depth, heads, mlp_ratio)
        self.ln_post = nn.LayerNorm(width)
        self.ffn = nn.Sequential(
            nn.Conv2d(width, head_hidden, kernel_size=1, bias=True),
            nn.Tanh(),
            nn.Conv2d(head_hidden, z_channels, kernel_size=1, bias=True),
        )

    def embed(self, codes: Tensor, keep: Tensor | None = None) -> Tensor:
        """Codes [N, L, token_dim] (L <= T) -> embedded tokens [N, T, width], zero beyond L.

        ``keep`` (bool [N, T], optional, only with L == T) zeroes further positions per sequence; it is how
        one batched pass decodes several prefix lengths.
        """
        x = self.decoder_embed(codes)
        missing = self.num_latent_tokens - x.shape[1]
        if missing:
            x = torch.cat([x, x.new_zeros(x.shape[0], missing, x.shape[2])], dim=1)
        if keep is not None:
            x = x * keep.unsqueeze(-1).to(x.dtype)
        return x

    def forward(self, embedded: Tensor) -> Tensor:
        """Embedded tokens [N, T, width] -> feature grid [N, z_channels, G, G]."""
        batch = embedded.shape[0]
        queries = self.mask_token.to(embedded.dtype).expand(batch, self.grid_size**2, -1)
        cls = self.class_embedding.to(embedded.dtype).expand(batch, 1, -1)
        queries = torch.cat([cls, queries], dim=1) + self.positional_embedding.to(embedded.dtype)
        latents = embedded + self.latent_token_positional_embedding.to(embedded.dtype)
        x = self.ln_pre(torch.cat([queries, latents], dim=1))
        for block in self.transformer:
            x = block(x)
        x = self.ln_post(x[:, 1 : 1 + self.grid_size**2])
        # The 1x1 convs of ffn act per position: run them as linears on the token axis, then lay out the grid.
        first, act, second = self.ffn[0], self.ffn[1], self.ffn[2]
        assert isinstance(first, nn.Conv2d) and isinstance(second, nn.Conv2d)
        x = act(F.linear(x, first.weight.flatten(1), first.bias))
        x = F.linear(x, second.weight.flatten(1), second.bias)
        return x.transpose(1, 2).reshape(batch, -1, self.grid_size, self.grid_size)
