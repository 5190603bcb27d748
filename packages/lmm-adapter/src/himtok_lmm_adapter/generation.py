"""Constrained generation of mask tokens: a `LogitsProcessor` for `model.generate`.

Once `<|mt_start|>` has been emitted, only mask tokens are allowed for exactly `length` steps, then
`<|mt_end|>` is forced. The state is read from the sequence itself (the last `<|mt_start|>` and how many
tokens follow it), so the processor is stateless: batched, left-padded, greedy, sampled and beam
generation all work, and one processor can serve many `generate` calls.
"""

from __future__ import annotations

from typing import cast

import torch
from transformers import LogitsProcessor

from himtok_lmm_adapter.vocab import MaskVocab


class MaskTokenLogitsProcessor(LogitsProcessor):
    """Force `<|mt_start|>` + `length` mask tokens + `<|mt_end|>` whenever a mask is started.

    With `forbid_outside=True` (default) mask tokens and `<|mt_end|>` are also banned outside a mask span,
    so every mask token the model writes sits in a well-formed span.
    """

    def __init__(self, vocab: MaskVocab, length: int = 32, *, forbid_outside: bool = True) -> None:
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise ValueError(f"length must be a positive int, got {length!r}")
        self.vocab = vocab
        self.length = length
        self.forbid_outside = forbid_outside

    def span_state(self, input_ids: torch.LongTensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two bool [B] tensors: inside a mask span (next token must be a mask token) / span full (must end)."""
        seq_len = input_ids.shape[-1]
        positions = torch.arange(seq_len, device=input_ids.device)
        last_start = torch.where(input_ids == self.vocab.start_id, positions, -1).amax(dim=-1)
        written = seq_len - 1 - last_start  # tokens after the last <|mt_start|>
        started = last_start >= 0
        return started & (written < self.length), started & (written == self.length)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.vocab.last_id >= scores.shape[-1]:
            raise ValueError(
                f"scores have {scores.shape[-1]} columns but the mask vocabulary reaches id {self.vocab.last_id}"
            )
        in_span, must_end = self.span_state(input_ids)
        outside = ~(in_span | must_end)
        free = outside if not self.forbid_outside else torch.zeros_like(outside)
        masks, end = self.vocab.mask_slice, self.vocab.end_id
        # Fill whole rows by index, then rewrite the 1 + K special columns through slices: no [B, V] masks,
        # which would dominate the cost at a 90k-token vocabulary.
        out = scores.clone()
        out.index_fill_(0, (~outside).nonzero().flatten(), float("-inf"))
        out[:, masks] = scores[:, masks].masked_fill(~(in_span | free)[:, None], float("-inf"))
        out[:, end] = scores[:, end].masked_fill(~(must_end | free), float("-inf"))
        return cast(torch.FloatTensor, out)
