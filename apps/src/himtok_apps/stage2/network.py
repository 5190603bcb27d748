"""One module for the whole stage-2/3 objective, so DDP and DeepSpeed see a single forward.

The forward writes the frozen encoder's codes into every mask placeholder (`MaskTokenTargets`), runs the
multimodal model teacher-forced, and returns the token cross-entropy plus, when the mask loss is on, HML on the
masks decoded from the soft mask-token distributions: `paper` (every mask of every answer, every sampled level
counts; `soft_mask_loss`) or `official` (the official `compute_mask_loss`, its sampler and defects included:
first mask per sample, stretched to the tokenizer's size, levels from numpy's legacy RNG).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from himtok_hml_loss import HierarchicalMaskLoss
from himtok_lmm_adapter import IGNORE_INDEX, MaskTokenTargets, MaskVocab, soft_mask_loss
from himtok_lmm_adapter.official import official_mask_loss
from himtok_mask_tokenizer import MaskTokenizer
from torch import nn


@dataclass
class StepOutput:
    loss: torch.Tensor
    parts: dict[str, float] = field(default_factory=dict)


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean CE of the supervised next tokens (logits at t predict labels at t + 1), as transformers computes it."""
    shifted = logits[:, :-1].float().flatten(0, 1)
    targets = labels[:, 1:].flatten()
    if not bool((targets != IGNORE_INDEX).any()):
        return shifted.sum() * 0.0
    return F.cross_entropy(shifted, targets, ignore_index=IGNORE_INDEX)


def official_targets(
    tokenizer_model: MaskTokenizer, masks: list[torch.Tensor | None], device: torch.device
) -> torch.Tensor:
    """One target per sample as the official loader gives it: its first mask at the tokenizer's input size
    (the tokenizer's own resize), zeros when the sample has none."""
    side = tokenizer_model.config.image_size
    out = torch.zeros(len(masks), side, side, device=device)
    for i, mask in enumerate(masks):
        if mask is not None and mask.shape[0]:
            prepared, _ = tokenizer_model.preprocess(mask[:1].float())
            out[i] = prepared[0].to(device)
    return out


class Stage2Network(nn.Module):
    """The multimodal model and the mask tokenizer under one forward that returns the training loss."""

    def __init__(
        self,
        lmm: nn.Module,
        mask_tokenizer: MaskTokenizer,
        vocab: MaskVocab,
        *,
        loss: str = "paper",
        mask_loss_weight: float = 1.0,
        hml_levels: int = 3,
        length: int = 32,
    ) -> None:
        super().__init__()
        self.lmm = lmm
        self.mask_tokenizer = mask_tokenizer
        self.vocab = vocab
        self.loss_kind = loss
        self.mask_loss_weight = mask_loss_weight
        self.hml_levels = hml_levels
        self.length = length
        self.targets = MaskTokenTargets(vocab, mask_tokenizer, length)
        self.hml = HierarchicalMaskLoss.official_lmm(n_levels=hml_levels, max_len=length)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        masks: list[torch.Tensor | None],
        level_seed: int,
    ) -> StepOutput:
        with torch.no_grad():
            replaced = self.targets(input_ids, labels, [m if m is not None else None for m in masks])
        out = self.lmm(
            input_ids=replaced.input_ids,
            attention_mask=attention_mask,
            pixel_values=pixel_values.to(next(self.lmm.parameters()).dtype),
        )
        ce = token_cross_entropy(out.logits, replaced.labels)
        parts = {"ce": float(ce.detach())}
        if self.mask_loss_weight <= 0:
            return StepOutput(ce, parts)
        logits = out.logits.float()
        if self.loss_kind == "official":
            result = official_mask_loss(
                logits,
                replaced.labels,
                self.vocab,
                official_targets(self.mask_tokenizer, masks, logits.device),
                self.mask_tokenizer,
                rng=np.random.RandomState(level_seed % 2**32),
                cos2fine=self.hml_levels,
                length=self.length,
            )
            mask_total = result.total
            parts.update(
                mask_loss=float(result.mask_loss.detach()), level_loss=float(result.level_loss.detach())
            )
        else:
            generator = torch.Generator().manual_seed(level_seed)
            soft = soft_mask_loss(
                logits,
                replaced.labels,
                self.vocab,
                masks,
                self.mask_tokenizer,
                self.hml,
                generator=generator,
                length=self.length,
            )
            mask_total = soft.total
            parts["mask_loss"] = float(soft.total.detach())
            if soft.hml is not None:
                per_level = soft.hml.per_level.detach()
                parts["mask_full"] = float(per_level[0])
                if per_level.numel() > 1:
                    parts["mask_levels"] = float(per_level[1:].mean())
            parts["masks"] = float(soft.num_masks)
        return StepOutput(ce + self.mask_loss_weight * mask_total, parts)
