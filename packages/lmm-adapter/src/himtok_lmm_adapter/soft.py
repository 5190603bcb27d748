"""Soft mask tokens: the LMM's distribution over the K mask columns, as the official code computes it."""

from __future__ import annotations

import torch

from himtok_lmm_adapter.vocab import MaskVocab

# Official temperature: softmax(2 * logits), i.e. logits / 0.5.
OFFICIAL_TEMPERATURE = 0.5


def mask_token_probs(
    logits: torch.Tensor, vocab: MaskVocab, temperature: float = OFFICIAL_TEMPERATURE
) -> torch.Tensor:
    """`softmax(logits / temperature)` over the K mask columns only: [..., V] -> [..., K], in float32.

    Equal to the official "add -inf outside the mask columns, softmax over the vocabulary, slice".
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if logits.shape[-1] <= vocab.last_id:
        raise ValueError(
            f"logits have {logits.shape[-1]} columns but the mask vocabulary reaches id {vocab.last_id}"
        )
    return torch.softmax(logits[..., vocab.mask_slice].float() / temperature, dim=-1)
