"""Stage-2 targets: the mask placeholder in `input_ids`/`labels` becomes the frozen encoder's codes."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from himtok_lmm_adapter.sample_masks import MasksArg, masks_per_sample
from himtok_lmm_adapter.spans import find_mask_spans
from himtok_lmm_adapter.vocab import MaskVocab

IGNORE_INDEX = -100


class ReplacedTokens(NamedTuple):
    """New `input_ids` and `labels`, and how many spans of each sample received codes ([B])."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    filled: torch.Tensor


class MaskTokenTargets:
    """Write ground-truth mask codes into the `length`-token placeholder after each `<|mt_start|>`.

    Codes come from `tokenizer_model.encode` (no gradient, the encoder stays frozen). Mask j of a sample goes to
    its j-th complete span (the official code supports exactly one, the first). In `input_ids` the whole span
    is written; in `labels` only positions that are supervised (label != ignore_index), so a mask in a human
    turn stays unsupervised. Samples without a mask are left untouched: pre-converted codes in them survive
    (the official code overwrites them with the codes of an empty mask). Spans without a mask, and masks
    without a span (e.g. cut by truncation), are left alone; `filled` says how many spans got codes.
    """

    def __init__(
        self, vocab: MaskVocab, tokenizer_model: Any, length: int = 32, ignore_index: int = IGNORE_INDEX
    ) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.vocab = vocab
        self.tokenizer_model = tokenizer_model
        self.length = length
        self.ignore_index = ignore_index

    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        """Masks [n, H, W] -> vocabulary ids [n, length] of their first `length` codes."""
        codes = self.tokenizer_model.encode(masks)[:, : self.length]
        if codes.shape[1] != self.length:
            raise ValueError(
                f"the mask tokenizer gives {codes.shape[1]} codes, fewer than length={self.length}"
            )
        return self.vocab.codes_to_ids(codes.cpu())

    def __call__(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        masks: MasksArg,
        has_mask: torch.Tensor | None = None,
    ) -> ReplacedTokens:
        if input_ids.shape != labels.shape or input_ids.dim() != 2:
            raise ValueError(
                f"input_ids and labels must both be [B, T], got {tuple(input_ids.shape)} and {tuple(labels.shape)}"
            )
        batch = input_ids.shape[0]
        per_sample = masks_per_sample(masks, batch, has_mask)
        spans, _ = find_mask_spans(input_ids, self.vocab, self.length)
        input_ids, labels = input_ids.clone(), labels.clone()
        used = [min(len(spans[b]), per_sample[b].shape[0]) for b in range(batch)]
        ids = self.encode_many([per_sample[b][: used[b]] for b in range(batch)])
        for b in range(batch):
            for j, span in enumerate(spans[b][: used[b]]):
                placeholder = input_ids[b, span.positions]
                if not bool(self.vocab.is_mask_id(placeholder).all()):
                    raise ValueError(
                        f"sample {b}: the {self.length} tokens after <|mt_start|> at position {span.start} "
                        "are not all mask tokens; the placeholder must be exactly `length` mask tokens"
                    )
                codes = ids[b][j].to(input_ids.device)
                input_ids[b, span.positions] = codes
                supervised = labels[b, span.positions] != self.ignore_index
                labels[b, span.positions] = torch.where(
                    supervised, codes.to(labels.device), labels[b, span.positions]
                )
        return ReplacedTokens(input_ids, labels, torch.tensor(used, dtype=torch.long))

    def encode_many(self, groups: list[torch.Tensor]) -> list[torch.Tensor]:
        """Encode several [n_b, H_b, W_b] stacks in as few encoder calls as there are distinct mask sizes."""
        out = [torch.zeros(g.shape[0], self.length, dtype=torch.long) for g in groups]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for b, g in enumerate(groups):
            if g.shape[0]:
                by_shape.setdefault(tuple(g.shape[1:]), []).append(b)
        for members in by_shape.values():
            ids = self.encode(torch.cat([groups[b] for b in members]))
            for b, chunk in zip(members, ids.split([groups[b].shape[0] for b in members]), strict=True):
                out[b] = chunk
        return out
