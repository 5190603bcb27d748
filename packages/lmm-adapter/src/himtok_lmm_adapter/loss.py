"""Stage-2 mask loss: HML on masks decoded from the LMM's soft mask-token distributions.

For each supervised span (a `<|mt_start|>` in `labels` followed by `length` positions), the logits that
predict those positions give `softmax(2 x logits)` over the K mask columns; the de-tokenizer turns them into a
mask through the un-normalised codebook, so the loss reaches the LMM (teacher forced, no straight-through).
Unlike the official code, a level l decodes exactly the first l positions (the official code keeps l - 2 and
wraps l = 1 to 31) and every sampled level enters the loss (the official code keeps only the last one, x3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from himtok_hml_loss import HierarchicalMaskLoss, HMLOutput

from himtok_lmm_adapter.sample_masks import MasksArg, masks_per_sample
from himtok_lmm_adapter.soft import OFFICIAL_TEMPERATURE, mask_token_probs
from himtok_lmm_adapter.spans import MaskSpan, find_mask_spans
from himtok_lmm_adapter.vocab import MaskVocab


@dataclass
class SoftMaskLoss:
    """`total` to add to the CE loss; `hml` the per-level details (None when the batch had no mask)."""

    total: torch.Tensor
    hml: HMLOutput | None
    spans: list[MaskSpan]

    @property
    def num_masks(self) -> int:
        return len(self.spans)


def supervised_spans(labels: torch.Tensor, vocab: MaskVocab, length: int = 32) -> list[list[MaskSpan]]:
    """Per sample, the spans whose `<|mt_start|>` and `length` mask positions are all supervised in `labels`."""
    complete, _ = find_mask_spans(labels, vocab, length)
    return [
        [s for s in row if bool(vocab.is_mask_id(labels[s.sample, s.positions]).all())] for row in complete
    ]


def soft_mask_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    vocab: MaskVocab,
    masks: MasksArg,
    tokenizer_model: Any,
    hml: HierarchicalMaskLoss,
    *,
    has_mask: torch.Tensor | None = None,
    levels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    length: int = 32,
    temperature: float = OFFICIAL_TEMPERATURE,
) -> SoftMaskLoss:
    """HML through the soft path for every supervised mask span that has a ground-truth mask.

    `logits` [B, T, V] and `labels` [B, T] are the model's unshifted inputs/outputs (the logits at t - 1
    predict the label at t). `masks` follows `MaskTokenTargets` (a [B, H, W] tensor with optional `has_mask`,
    or a list of None / [H, W] / [n, H, W]); mask j of a sample belongs to its j-th supervised span. `levels`
    ([n] or [M, n]) defaults to the loss's own draw. With no mask in the batch the total is a zero that still
    depends on the logits and the de-tokenizer, so every rank of a distributed run has the same graph.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"logits must be [B, T, V] and labels [B, T], got {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    if hml.max_len != length:
        raise ValueError(f"the HML max_len ({hml.max_len}) must equal the number of mask tokens ({length})")
    decode_fn = tokenizer_model.decode_soft if hml.from_probs else tokenizer_model.decode_soft_logits
    per_sample = masks_per_sample(masks, labels.shape[0], has_mask)
    spans: list[MaskSpan] = []
    targets: list[torch.Tensor] = []
    for row, row_masks in zip(supervised_spans(labels, vocab, length), per_sample, strict=True):
        n = min(len(row), row_masks.shape[0])
        spans.extend(row[:n])
        targets.extend(row_masks[:n])
    if not spans:
        uniform = logits.new_full((1, length, vocab.codebook_size), 1.0 / vocab.codebook_size)
        keep_alive = decode_fn(uniform).sum() + logits[..., vocab.mask_slice].sum()
        return SoftMaskLoss(total=keep_alive * 0.0, hml=None, spans=[])

    # Logits at positions start .. start+length-1 predict the mask tokens at start+1 .. start+length.
    span_logits = torch.stack([logits[s.sample, s.start : s.start + length] for s in spans])
    probs = mask_token_probs(span_logits, vocab, temperature)  # [M, length, K]
    target_maps = _prepare_targets(tokenizer_model, targets)

    def decode(prefix_lengths: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor | None = None
        for level in prefix_lengths.unique().tolist():
            rows, cols = (prefix_lengths == level).nonzero(as_tuple=True)
            maps = decode_fn(probs[rows, :level])
            if out is None:
                out = maps.new_zeros(*prefix_lengths.shape, *maps.shape[1:])
            out = out.index_put((rows, cols), maps)
        assert out is not None
        return out

    result = hml(decode, target_maps, levels, generator=generator)
    return SoftMaskLoss(total=result.total, hml=result, spans=spans)


def _prepare_targets(tokenizer_model: Any, targets: list[torch.Tensor]) -> torch.Tensor:
    """Masks of any sizes -> [M, S, S] float in [0, 1] with the tokenizer's own resize (stretch by default)."""
    maps = []
    for mask in targets:
        prepared, _ = tokenizer_model.preprocess(mask[None])
        maps.append(prepared)
    return torch.cat(maps)
