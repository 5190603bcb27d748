"""The official stage-2 mask loss, reproduced number for number (defects included).

`himtok_lmm_adapter.soft_mask_loss` is the fixed loss. This module is for users who need the exact training
objective of the official code (yayafengzi/LMM-HiMTok, `MaskDecoder.compute_mask_loss`), e.g. to compare with
a run of the official trainer. What it reproduces on purpose:

- Selection: the model's logits and labels are shifted (`logits[:, :-1]`, `labels[:, 1:]`); in each row only
  the first `<|mt_start|>` of the shifted labels counts, and the row is invalid (all-zero probabilities) when
  `start + length + 1 >= T - 1`, i.e. when no token follows the `length` mask tokens.
- Levels: `cos2fine` values x in 0..length-1 drawn without replacement from numpy's legacy RNG with
  p(x) ∝ 1/(x + 9), giving the official `indices = x - 1`. A level keeps `probs[:, :index]` and zero rows
  after it, so index -1 keeps `length - 1` tokens and index 0 keeps none; zero rows decode to the
  `decoder_embed` bias (the full `length`-row tensor is decoded, nothing is truncated).
- Level targets: Gaussian blur with σ = 100 / (index + 2) − 2, kernel side 2·ceil(3σ) + 1, zero padding,
  then each map divided by its own maximum (clamped at 1e-6).
- Terms: BCE on probabilities clamped to [1e-6, 1 − 1e-6] plus `dice_weight` × Dice pooled over the whole
  batch (predictions clamped, ε = 1e-6). Only the **last** level's term enters, multiplied by the number of
  levels. With no valid row, both terms use row 0 as a dummy and are multiplied by 0 (the graph survives).

Not reproduced: the official bf16 CUDA autocast around the de-tokenizer (wrap the call in an autocast
context yourself if you need it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from himtok_lmm_adapter.soft import mask_token_probs
from himtok_lmm_adapter.vocab import MaskVocab

OFFICIAL_LENGTH = 32
OFFICIAL_LEVELS = 3
OFFICIAL_DICE_WEIGHT = 0.25
_EPS = 1e-6
_LEVEL_OFFSET = 9  # p(x) ∝ 1 / (x + 9), x in 0..length-1


@dataclass
class OfficialMaskLoss:
    """The official stage-2 mask terms of one batch.

    `mask_loss` and `level_loss` are the official `compute_mask_loss` outputs (scalars); the official trainer
    adds `mask_loss_weight · (mask_loss + level_loss)` to the CE loss. `level_loss` is
    `len(indices) · (level_bce + dice_weight · level_dice)` of the last level only (a zero without levels).
    The `*_bce` / `*_dice` pieces are the unweighted terms before the no-valid-row factor 0.
    """

    mask_loss: torch.Tensor
    level_loss: torch.Tensor
    indices: tuple[int, ...]
    probs: torch.Tensor
    valid: torch.Tensor
    masks: torch.Tensor
    mask_bce: torch.Tensor
    mask_dice: torch.Tensor
    level_bce: torch.Tensor | None
    level_dice: torch.Tensor | None

    @property
    def total(self) -> torch.Tensor:
        """`mask_loss + level_loss` (multiply by the trainer's mask-loss weight)."""
        return self.mask_loss + self.level_loss

    @property
    def level_tokens(self) -> int | None:
        """How many leading tokens the scored (last) level kept; None without levels."""
        if not self.indices:
            return None
        return level_keep(self.indices[-1], self.probs.shape[1])


def official_token_probs(
    logits: torch.Tensor, labels: torch.Tensor, vocab: MaskVocab, length: int = OFFICIAL_LENGTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official soft token distributions at the supervised mask positions.

    `logits` [B, T, V] and `labels` [B, T] are the model's unshifted outputs and labels; the official shift
    is done here. Returns `(probs [B, length, K] float32, valid [B] bool)`: for each row, softmax(2 · logits)
    over the K mask columns at the `length` positions that predict the tokens after the first
    `<|mt_start|>` of the labels. Rows without a start, or whose span leaves no token after it, are invalid
    and get all-zero probabilities (and no gradient).
    """
    if logits.dim() != 3 or labels.dim() != 2 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"logits must be [B, T, V] and labels [B, T], got {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if logits.shape[0] == 0:
        raise ValueError("empty batch (B = 0)")
    if logits.shape[1] < 2:
        raise ValueError(f"sequences must have at least 2 positions to be shifted, got T = {logits.shape[1]}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer ids, got dtype {labels.dtype}")
    shifted_logits = logits[:, :-1]
    shifted_labels = labels[:, 1:]
    batch, seq_len = shifted_labels.shape
    is_start = shifted_labels == vocab.start_id
    has_start = is_start.any(dim=1)
    first = is_start.long().argmax(dim=1)  # first True (0 where there is none)
    valid = has_start & (first + length + 1 < seq_len)
    offsets = torch.arange(1, length + 1, device=logits.device)
    positions = torch.where(valid.unsqueeze(1), first.unsqueeze(1) + offsets, torch.zeros_like(offsets))
    rows = torch.arange(batch, device=logits.device).unsqueeze(1)
    probs = mask_token_probs(shifted_logits[rows, positions], vocab)
    probs = torch.where(valid[:, None, None], probs, probs.new_zeros(()))
    return probs, valid


def official_levels(
    rng: np.random.RandomState | None, n_levels: int = OFFICIAL_LEVELS, length: int = OFFICIAL_LENGTH
) -> tuple[int, ...]:
    """The official level draw: `n_levels` distinct x in 0..length-1 with p(x) ∝ 1/(x + 9), returned as the
    official `indices = x - 1` (in -1..length-2), in draw order.

    `rng` is a legacy `numpy.random.RandomState`; `None` uses numpy's global RNG, exactly as the official code
    does (so `np.random.seed(s)` followed by the official call equals `official_levels(RandomState(s))`).
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if not 1 <= n_levels <= length:
        raise ValueError(f"n_levels must be in 1..{length}, got {n_levels}")
    if rng is not None and not isinstance(rng, np.random.RandomState):
        raise ValueError(
            f"rng must be a numpy.random.RandomState (the official code uses numpy's legacy RNG), got {type(rng).__name__}"
        )
    x = np.arange(length)
    p = 1 / (x + _LEVEL_OFFSET)
    p = p / np.sum(p)
    draw = (rng if rng is not None else np.random).choice(len(p), size=n_levels, p=p, replace=False)
    return tuple(int(v) - 1 for v in draw)


def level_keep(index: int, length: int = OFFICIAL_LENGTH) -> int:
    """Number of leading tokens the official slice `probs[:, :index]` keeps (index -1 keeps length - 1)."""
    return index if index >= 0 else max(length + index, 0)


def official_level_sigma(index: int) -> float:
    """The official blur σ of a level index: 100 / (index + 2) − 2 (98 at index −1)."""
    return 100 / (index + 2) - 2


def official_level_target(target_masks: torch.Tensor, index: int) -> torch.Tensor:
    """The official level target of `target_masks` [B, H, W]: Gaussian blur (σ of `official_level_sigma`, a
    normalised (2·ceil(3σ) + 1)² kernel, zero padding), each map then divided by its maximum (≥ 1e-6).

    The 2-D kernel is separable, so this is `A_H @ M @ A_Wᵀ` with banded matrices (same values as the
    official 2-D convolution, computed in float64, returned in the masks' dtype).
    """
    if target_masks.dim() != 3:
        raise ValueError(f"target_masks must be [B, H, W], got {tuple(target_masks.shape)}")
    if index < -1 or official_level_sigma(index) <= 0:
        raise ValueError(f"index must be an official level index (>= -1, with σ > 0), got {index}")
    sigma = official_level_sigma(index)
    radius = (2 * math.ceil(3 * sigma) + 1) // 2
    height, width = target_masks.shape[1:]
    a_h = _blur_matrix(height, sigma, radius, target_masks.device)
    a_w = a_h if width == height else _blur_matrix(width, sigma, radius, target_masks.device)
    blurred = a_h @ target_masks.double() @ a_w.T
    peak = blurred.amax(dim=(1, 2), keepdim=True).clamp(min=_EPS)
    return (blurred / peak).to(target_masks.dtype)


def _blur_matrix(side: int, sigma: float, radius: int, device: torch.device) -> torch.Tensor:
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    norm = torch.exp(-(taps**2) / (2 * sigma**2)).sum()
    i = torch.arange(side, dtype=torch.float64, device=device)
    d = i.unsqueeze(0) - i.unsqueeze(1)
    weights = torch.exp(-(d**2) / (2 * sigma**2)) / norm
    return torch.where(d.abs() <= radius, weights, weights.new_zeros(()))


def official_bce(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Official `compute_bce_loss_prob`: mean BCE with the predictions clamped to [1e-6, 1 − 1e-6]."""
    p = preds.float().clamp(_EPS, 1 - _EPS)
    t = targets.float()
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()


def official_dice(preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Official `compute_dice_loss_prob`: 1 − (2Σpt + ε)/(Σp + Σt + ε) pooled over everything, predictions
    clamped to [1e-6, 1 − 1e-6], ε = 1e-6."""
    p = preds.float().clamp(_EPS, 1 - _EPS)
    t = targets.float()
    return 1 - (2 * (p * t).sum() + _EPS) / (p.sum() + t.sum() + _EPS)


def official_mask_loss_from_probs(
    probs: torch.Tensor,
    valid: torch.Tensor,
    target_masks: torch.Tensor,
    tokenizer_model: Any,
    indices: Sequence[int] = (),
    *,
    dice_weight: float = OFFICIAL_DICE_WEIGHT,
) -> OfficialMaskLoss:
    """The official mask and level terms from soft token distributions.

    `probs` [B, L, K] and `valid` [B] as returned by `official_token_probs`; `target_masks` [B, S, S] float in
    [0, 1] at the de-tokenizer's output size (official stage 2: soft masks stretched to 256²); `indices` the
    official level indices (`official_levels`), empty for no level loss. `tokenizer_model.decode_soft` turns
    distributions into probabilities (a `himtok_mask_tokenizer.MaskTokenizer`).
    """
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point() or probs.dim() != 3:
        raise ValueError(f"probs must be a float tensor [B, L, K], got {_describe(probs)}")
    batch, length = probs.shape[:2]
    if batch == 0:
        raise ValueError("empty batch (B = 0)")
    if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool or valid.shape != (batch,):
        raise ValueError(f"valid must be a bool tensor [{batch}], got {_describe(valid)}")
    if (
        not isinstance(target_masks, torch.Tensor)
        or not target_masks.is_floating_point()
        or target_masks.dim() != 3
        or target_masks.shape[0] != batch
    ):
        raise ValueError(
            f"target_masks must be a float tensor [{batch}, S, S], got {_describe(target_masks)}"
        )
    if bool(((target_masks < 0) | (target_masks > 1) | ~torch.isfinite(target_masks)).any()):
        raise ValueError("target_masks must lie in [0, 1]")
    indices = tuple(int(i) for i in indices)
    bad = [i for i in indices if not -1 <= i <= length - 2]
    if bad:
        raise ValueError(f"level indices must lie in -1..{length - 2} (official x - 1), got {bad}")
    if not math.isfinite(dice_weight) or dice_weight < 0:
        raise ValueError(f"dice_weight must be a finite number >= 0, got {dice_weight}")

    any_valid = bool(valid.any())
    used = valid if any_valid else torch.arange(batch, device=valid.device) == 0  # official dummy: row 0
    factor = 1.0 if any_valid else 0.0
    decoder_input = probs
    if indices:
        keep = torch.arange(length, device=probs.device) < level_keep(indices[-1], length)
        level_probs = probs[used] * keep[None, :, None].to(probs.dtype)
        decoder_input = torch.cat([probs, level_probs], dim=0)
    decoded = tokenizer_model.decode_soft(decoder_input)
    masks = decoded[:batch]
    if masks.shape[1:] != target_masks.shape[1:]:
        raise ValueError(
            f"target_masks are {tuple(target_masks.shape[1:])} but the de-tokenizer outputs "
            f"{tuple(masks.shape[1:])}"
        )
    targets = target_masks[used]
    mask_bce = official_bce(masks[used], targets)
    mask_dice = official_dice(masks[used], targets)
    mask_loss = factor * (mask_bce + dice_weight * mask_dice)

    level_bce = level_dice = None
    if indices:
        level_target = official_level_target(targets.float(), indices[-1])
        level_masks = decoded[batch:]
        level_bce = official_bce(level_masks, level_target)
        level_dice = official_dice(level_masks, level_target)
        level_loss = factor * len(indices) * (level_bce + dice_weight * level_dice)
    else:
        level_loss = mask_loss.new_zeros(())
    return OfficialMaskLoss(
        mask_loss=mask_loss,
        level_loss=level_loss,
        indices=indices,
        probs=probs,
        valid=valid,
        masks=masks,
        mask_bce=mask_bce,
        mask_dice=mask_dice,
        level_bce=level_bce,
        level_dice=level_dice,
    )


def official_mask_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    vocab: MaskVocab,
    target_masks: torch.Tensor,
    tokenizer_model: Any,
    *,
    rng: np.random.RandomState | None,
    cos2fine: int = OFFICIAL_LEVELS,
    dice_weight: float = OFFICIAL_DICE_WEIGHT,
    length: int = OFFICIAL_LENGTH,
) -> OfficialMaskLoss:
    """The official stage-2 mask loss (`compute_mask_loss`) of a teacher-forced batch.

    `logits` [B, T, V] and `labels` [B, T] are the model's unshifted outputs and labels (after the
    ground-truth codes were written in); `target_masks` [B, S, S] the official targets. `cos2fine` levels
    (0 for none, which draws nothing) come from `rng` (`official_levels`; `None` = numpy's global RNG as in
    the official code). The draw happens once per call, after the probabilities, as in the official code.
    """
    if isinstance(cos2fine, bool) or not isinstance(cos2fine, int) or not 0 <= cos2fine <= length:
        raise ValueError(f"cos2fine must be an int in 0..{length}, got {cos2fine!r}")
    num_tokens = getattr(getattr(tokenizer_model, "config", None), "num_latent_tokens", None)
    if num_tokens is not None and not 1 <= length <= num_tokens:
        raise ValueError(f"length must be in 1..{num_tokens} (the de-tokenizer's tokens), got {length}")
    probs, valid = official_token_probs(logits, labels, vocab, length)
    indices = official_levels(rng, cos2fine, length) if cos2fine > 0 else ()
    return official_mask_loss_from_probs(
        probs, valid, target_masks, tokenizer_model, indices, dice_weight=dice_weight
    )


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {tuple(value.shape)}"
    return type(value).__name__
