"""The hierarchical mask loss: BCE + Dice at the full level and at a few sampled partial levels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from himtok_hml_loss.labels import compute_level_labels
from himtok_hml_loss.levels import check_levels, prefix_lengths, sample_levels
from himtok_hml_loss.masks import as_float_masks
from himtok_hml_loss.schedules import check_schedule
from himtok_hml_loss.terms import dice_from_sums, map_statistics

Decoder = Callable[[Tensor], Tensor]


@dataclass
class HMLOutput:
    """Result of :class:`HierarchicalMaskLoss`.

    ``total`` is the scalar to back-propagate. ``per_level``, ``bce`` and ``dice`` are ``[n + 1]`` (full level
    first, then the partial levels in the order of ``levels``); ``per_level = bce_weight * bce + dice_weight *
    dice`` and they keep their graph, so callers may re-weight them. ``levels`` are the partial levels used
    (``[n]`` or ``[B, n]``), handy when the loss drew them itself.
    """

    total: Tensor
    per_level: Tensor
    bce: Tensor
    dice: Tensor
    levels: Tensor


class HierarchicalMaskLoss(nn.Module):
    """HML: ``sum over levels of bce_weight * BCE + dice_weight * Dice``, full level plus ``n`` partial levels.

    Call it as ``loss(logits_by_level, masks, levels)`` with ``logits_by_level`` ``[B, n + 1, H, W]`` (column 0
    is the full level, columns 1.. follow ``levels``), or as ``loss(decode, masks, levels)`` where
    ``decode(prefix_lengths)`` gets a LongTensor ``[B, n + 1]`` of token counts (column 0 is ``max_len``) and
    returns those ``[B, n + 1, H, W]`` predictions: a decoder that keeps exactly that many tokens per row.
    ``levels`` (``[n]`` shared by the batch, or ``[B, n]``) may be left out: the loss then draws ``n_levels``
    shared levels with p(l) proportional to 1 / (l + level_offset), from ``generator`` if given.

    Predictions are logits, or probabilities with ``from_probs=True``: the BCE clamps those to
    [prob_eps, 1 - prob_eps] as the official code does, the Dice uses them as they are.
    (The official code clamps inside its Dice too, which makes an all-zero prediction of an empty batch cost
    about 1 with eps 1e-6; here that case costs 0.) Predictions may be float16 or bfloat16; everything is
    computed in float32 with autocast off. No gradient flows to ``masks``.

    ``dice="per_sample"`` averages a per-mask Dice over the batch (so a batch's loss is the mean of its
    samples' losses); ``dice="batch"`` pools the sums over the whole batch, as the official LMM code does.
    ``dice_eps`` is the smoothing term of 1 - (2 I + eps) / (P + Y + eps): the default 1.0 makes an empty
    label matched by a near-empty prediction cost about 0. ``reduction_over_levels`` is ``"sum"`` (paper) or
    ``"mean"``.
    """

    def __init__(
        self,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        schedule: str = "paper",
        n_levels: int = 3,
        reduction_over_levels: Literal["sum", "mean"] = "sum",
        dice: Literal["per_sample", "batch"] = "per_sample",
        *,
        from_probs: bool = False,
        max_len: int = 32,
        level_offset: float = 8.0,
        dice_eps: float = 1.0,
        prob_eps: float = 1e-6,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        check_schedule(schedule)
        if reduction_over_levels not in ("sum", "mean"):
            raise ValueError(f"reduction_over_levels must be 'sum' or 'mean', got {reduction_over_levels!r}")
        if dice not in ("per_sample", "batch"):
            raise ValueError(f"dice must be 'per_sample' or 'batch', got {dice!r}")
        if bce_weight < 0 or dice_weight < 0:
            raise ValueError(f"loss weights must be non-negative, got bce {bce_weight}, dice {dice_weight}")
        if max_len < 2:
            raise ValueError(f"max_len must be at least 2, got {max_len}")
        if not 0 <= n_levels < max_len:
            raise ValueError(f"n_levels must lie in 0..{max_len - 1}, got {n_levels}")
        if dice_eps < 0 or not 0 <= prob_eps < 0.5:
            raise ValueError(f"need dice_eps >= 0 and 0 <= prob_eps < 0.5, got {dice_eps}, {prob_eps}")
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)
        self.schedule = schedule
        self.n_levels = n_levels
        self.reduction_over_levels = reduction_over_levels
        self.dice = dice
        self.from_probs = from_probs
        self.max_len = max_len
        self.level_offset = float(level_offset)
        self.dice_eps = float(dice_eps)
        self.prob_eps = float(prob_eps)
        self.check_inputs = check_inputs

    @classmethod
    def official_lmm(cls, **overrides: Any) -> HierarchicalMaskLoss:
        """The official LMM (stage 2) setting: probabilities in, BCE 1 + Dice 0.25 with the Dice pooled over
        the batch (eps 1e-6), the official blur schedule, 3 levels. Unlike the official code, every sampled
        level enters the loss and a level l keeps exactly l tokens."""
        settings: dict[str, Any] = {
            "bce_weight": 1.0,
            "dice_weight": 0.25,
            "schedule": "official",
            "n_levels": 3,
            "dice": "batch",
            "from_probs": True,
            "dice_eps": 1e-6,
            "prob_eps": 1e-6,
        }
        settings.update(overrides)
        return cls(**settings)

    def sample_levels(
        self, batch_size: int | None = None, generator: torch.Generator | None = None, device: Any = None
    ) -> Tensor:
        """Draw ``n_levels`` partial levels with this loss's ``max_len`` and ``level_offset``."""
        return sample_levels(
            self.n_levels, self.max_len, self.level_offset, generator, batch_size, device=device
        )

    def extra_repr(self) -> str:
        return (
            f"bce_weight={self.bce_weight}, dice_weight={self.dice_weight}, schedule={self.schedule!r}, "
            f"n_levels={self.n_levels}, dice={self.dice!r}, from_probs={self.from_probs}, max_len={self.max_len}"
        )

    def forward(
        self,
        predictions: Tensor | Decoder,
        masks: Tensor,
        levels: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> HMLOutput:
        masks = as_float_masks(masks, check_values=self.check_inputs)
        batch, height, width = masks.shape
        if levels is None:
            levels = self.sample_levels(generator=generator, device=masks.device)
        levels = check_levels(levels, batch, self.max_len, check_values=self.check_inputs).to(masks.device)
        n = levels.shape[-1]
        if callable(predictions) and not isinstance(predictions, Tensor):
            predictions = predictions(prefix_lengths(levels, batch, self.max_len))
        if not isinstance(predictions, Tensor) or not predictions.is_floating_point():
            raise ValueError("predictions must be a floating-point tensor (or a decoder returning one)")
        if predictions.device != masks.device:
            raise ValueError(f"predictions are on {predictions.device} but masks on {masks.device}")
        expected = (batch, n + 1, height, width)
        if tuple(predictions.shape) != expected:
            raise ValueError(
                f"predictions must have shape [B, n+1, H, W] = {expected} (full level first), "
                f"got {tuple(predictions.shape)}"
            )
        with torch.autocast(masks.device.type, enabled=False):
            partial = compute_level_labels(masks, levels, self.schedule, self.max_len, clamp=False)
            return self._reduce(predictions, masks, partial, levels)

    def _reduce(self, predictions: Tensor, masks: Tensor, partial: Tensor, levels: Tensor) -> HMLOutput:
        bce_maps, intersection, pred_sum, label_sum = map_statistics(
            predictions, masks, partial, from_probs=self.from_probs, prob_eps=self.prob_eps
        )
        bce = bce_maps.mean(0)
        if self.dice == "batch":
            dice = dice_from_sums(intersection.sum(0), pred_sum.sum(0), label_sum.sum(0), self.dice_eps)
        else:
            dice = dice_from_sums(intersection, pred_sum, label_sum, self.dice_eps).mean(0)
        per_level = self.bce_weight * bce + self.dice_weight * dice
        total = per_level.sum() if self.reduction_over_levels == "sum" else per_level.mean()
        return HMLOutput(total=total, per_level=per_level, bce=bce, dice=dice, levels=levels)
