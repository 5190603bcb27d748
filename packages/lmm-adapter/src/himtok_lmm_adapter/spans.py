"""Finding mask spans (`<|mt_start|>` followed by `length` positions) in token sequences."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from himtok_lmm_adapter.vocab import MaskVocab


@dataclass(frozen=True)
class MaskSpan:
    """One `<|mt_start|>` at `start` in row `sample`; its mask positions are `start+1 .. start+length`."""

    sample: int
    start: int
    length: int

    @property
    def positions(self) -> slice:
        return slice(self.start + 1, self.start + 1 + self.length)


def find_mask_spans(
    ids: torch.Tensor, vocab: MaskVocab, length: int = 32
) -> tuple[list[list[MaskSpan]], list[MaskSpan]]:
    """Mask spans of every row of `ids` [B, T], in order, and the spans cut off by the end of the row.

    Scanning resumes after each complete span, so a start id inside a span does not open a second one.
    Returns `(complete, truncated)`: `complete[b]` lists row b's complete spans; `truncated` lists the spans
    whose `length` positions do not fit in the row.
    """
    if ids.dim() != 2:
        raise ValueError(f"ids must be [batch, seq], got shape {tuple(ids.shape)}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    seq_len = ids.shape[1]
    complete: list[list[MaskSpan]] = []
    truncated: list[MaskSpan] = []
    starts = (ids == vocab.start_id).nonzero().tolist()
    by_row: dict[int, list[int]] = {}
    for row, col in starts:
        by_row.setdefault(row, []).append(col)
    for row in range(ids.shape[0]):
        spans: list[MaskSpan] = []
        free_from = 0
        for col in by_row.get(row, []):
            if col < free_from:
                continue
            span = MaskSpan(row, col, length)
            if col + length < seq_len:
                spans.append(span)
                free_from = col + length + 1
            else:
                truncated.append(span)
                break
        complete.append(spans)
    return complete, truncated
