"""Sequence-first ``nn.MultiheadAttention`` path, the way the official code runs its blocks.

Not used for inference: it exists so tests can check that the SDPA path computes the same function, and so
the benchmark can measure both with the same weights in the same run.
"""

from __future__ import annotations

import copy

from torch import Tensor, nn

from himtok_mask_tokenizer.modeling.transformer import SelfAttention


class SequenceFirstAttention(nn.Module):
    """Drop-in for ``SelfAttention`` (same parameter names) that runs ``nn.MultiheadAttention`` on [T, B, C]."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(width, heads, batch_first=False)

    def forward(self, x: Tensor, allowed: Tensor | None = None) -> Tensor:
        seq_first = x.transpose(0, 1)  # a view, as the official permute(1, 0, 2)
        blocked = None if allowed is None else ~allowed  # MHA bool masks mean "blocked"
        out = self.mha(seq_first, seq_first, seq_first, attn_mask=blocked, need_weights=False)[0]
        return out.transpose(0, 1)


def with_reference_attention(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose ``SelfAttention`` modules are replaced by ``SequenceFirstAttention``
    holding the same weights."""
    clone = copy.deepcopy(model)
    for module in list(clone.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, SelfAttention):
                replacement = SequenceFirstAttention(child.width, child.heads).to(
                    child.in_proj_weight.device, child.in_proj_weight.dtype
                )
                replacement.mha.load_state_dict(child.state_dict(), strict=True)
                setattr(module, name, replacement)
    return clone
