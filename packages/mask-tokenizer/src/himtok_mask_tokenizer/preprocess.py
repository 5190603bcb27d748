"""Mask input validation and the recorded, invertible resize to the model's square resolution.

Masks: bool, uint8 (0..255, divided by 255 as the official code does) or float in [0, 1]; numpy arrays or
tensors shaped HxW, BxHxW or Bx1xHxW, any size. ``"stretch"`` (the official behaviour, default) resizes each
side independently; ``"pad"`` zero-pads bottom/right to a square first, as the official ``prepare_image`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class MaskTransform:
    """How a batch of masks of ``original_size`` (H, W) was brought to ``size`` x ``size``."""

    original_size: tuple[int, int]
    size: int
    mode: str = "stretch"

    @property
    def padded_side(self) -> int:
        return max(self.original_size)

    def apply(self, masks: Tensor) -> Tensor:
        """[B, H, W] float -> [B, size, size] float, values kept in [0, 1]."""
        x = masks.unsqueeze(1)
        if self.mode == "pad":
            height, width = self.original_size
            side = self.padded_side
            x = F.pad(x, (0, side - width, 0, side - height))
        out = _resize(x, (self.size, self.size))
        return out.squeeze(1).clamp_(0.0, 1.0)

    def invert(self, maps: Tensor) -> Tensor:
        """[B, size, size] maps (logits or probabilities) -> [B, H, W] at the original size."""
        x = maps.unsqueeze(1)
        if self.mode == "pad":
            side = self.padded_side
            x = _resize(x, (side, side))[..., : self.original_size[0], : self.original_size[1]]
        else:
            x = _resize(x, self.original_size)
        return x.squeeze(1)


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    # antialias keeps thin structures when shrinking large masks; it is a no-op factor when enlarging.
    return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True).to(
        x.dtype
    )


def as_mask_tensor(masks: object) -> Tensor:
    """Validate masks and return them as a float32 [B, H, W] tensor in [0, 1]."""
    if isinstance(masks, np.ndarray):
        if masks.dtype == np.bool_ or masks.dtype == np.uint8 or np.issubdtype(masks.dtype, np.floating):
            masks = torch.from_numpy(np.ascontiguousarray(masks))
        else:
            raise ValueError(f"masks must be bool, uint8 or float, got numpy dtype {masks.dtype}")
    if not isinstance(masks, torch.Tensor):
        raise ValueError(f"masks must be a numpy array or a torch.Tensor, got {type(masks).__name__}")
    if masks.ndim == 2:
        masks = masks.unsqueeze(0)
    elif masks.ndim == 4:
        if masks.shape[1] != 1:
            raise ValueError(f"4-D masks must be Bx1xHxW, got shape {tuple(masks.shape)}")
        masks = masks[:, 0]
    elif masks.ndim != 3:
        raise ValueError(f"masks must be HxW, BxHxW or Bx1xHxW, got {masks.ndim} dimensions")
    if masks.shape[0] == 0:
        raise ValueError("masks is an empty batch (B = 0)")
    if masks.shape[1] == 0 or masks.shape[2] == 0:
        raise ValueError(f"masks have an empty spatial size {tuple(masks.shape[1:])}")
    if masks.dtype == torch.bool:
        return masks.float()
    if masks.dtype == torch.uint8:
        return masks.float() / 255.0
    if not masks.is_floating_point():
        raise ValueError(f"masks must be bool, uint8 or float, got dtype {masks.dtype}")
    masks = masks.float()
    if not torch.isfinite(masks).all():
        raise ValueError("masks contain NaN or inf values")
    low, high = float(masks.min()), float(masks.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"float masks must lie in [0, 1], got values in [{low:g}, {high:g}]")
    return masks


def prepare_masks(masks: object, size: int, mode: str = "stretch") -> tuple[Tensor, MaskTransform]:
    """Validate and resize masks: returns ([B, size, size] float32 in [0, 1], the transform used)."""
    tensor = as_mask_tensor(masks)
    transform = MaskTransform((int(tensor.shape[1]), int(tensor.shape[2])), size, mode)
    return transform.apply(tensor), transform


def check_tokens(tokens: object, max_length: int, codebook_size: int) -> Tensor:
    """Validate a token batch [B, L] (1 <= L <= max_length, values in [0, codebook_size))."""
    if not isinstance(tokens, torch.Tensor):
        raise ValueError(f"tokens must be a torch.Tensor, got {type(tokens).__name__}")
    if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"tokens must be an integer tensor, got dtype {tokens.dtype}")
    if tokens.ndim != 2:
        raise ValueError(
            f"tokens must have shape [B, L], got {tuple(tokens.shape)} (use tokens[None] for one mask)"
        )
    batch, length = tokens.shape
    if batch == 0:
        raise ValueError("tokens is an empty batch (B = 0)")
    if not 1 <= length <= max_length:
        raise ValueError(f"token length L must be in 1..{max_length}, got {length}")
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= codebook_size:
        raise ValueError(f"tokens must lie in [0, {codebook_size}), got values in [{low}, {high}]")
    return tokens.long()


def check_token_probs(probs: object, max_length: int, codebook_size: int) -> Tensor:
    """Validate soft token distributions [B, L, K] (1 <= L <= max_length, K = codebook_size, finite)."""
    if not isinstance(probs, torch.Tensor) or not probs.is_floating_point():
        raise ValueError("probs must be a floating-point torch.Tensor [B, L, codebook_size]")
    if probs.ndim != 3 or probs.shape[2] != codebook_size:
        raise ValueError(f"probs must have shape [B, L, {codebook_size}], got {tuple(probs.shape)}")
    if probs.shape[0] == 0:
        raise ValueError("probs is an empty batch (B = 0)")
    if not 1 <= probs.shape[1] <= max_length:
        raise ValueError(f"probs length L must be in 1..{max_length}, got {probs.shape[1]}")
    if not torch.isfinite(probs).all():
        raise ValueError("probs contain NaN or inf values")
    return probs


def check_size(size: object) -> tuple[int, int]:
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(isinstance(s, int | np.integer) and int(s) > 0 for s in size)
    ):
        raise ValueError(f"size must be a pair of positive integers (H, W), got {size!r}")
    return int(size[0]), int(size[1])
