"""Validation of target masks at the loss boundary."""

from __future__ import annotations

import torch
from torch import Tensor


def as_float_masks(masks: Tensor, *, check_values: bool = True) -> Tensor:
    """Return ``masks`` as float32 ``[B, H, W]`` in [0, 1].

    Accepts ``[B, H, W]`` or ``[B, 1, H, W]`` of dtype bool, uint8 (values 0 or 1) or floating point (soft
    masks in [0, 1]). ``check_values=False`` skips the value checks, which read back from the device.
    """
    if not isinstance(masks, Tensor):
        raise ValueError(f"masks must be a torch.Tensor, got {type(masks).__name__}")
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(f"masks must have shape [B, H, W] or [B, 1, H, W], got {tuple(masks.shape)}")
    if masks.numel() == 0:
        raise ValueError(f"masks is empty (shape {tuple(masks.shape)})")
    if masks.dtype == torch.bool:
        return masks.float()
    if masks.dtype == torch.uint8:
        if check_values and bool((masks > 1).any()):
            raise ValueError("uint8 masks must hold 0 or 1; divide 0/255 masks by 255 or pass them as bool")
        return masks.float()
    if not masks.is_floating_point():
        raise ValueError(f"masks must be bool, uint8 or floating point, got dtype {masks.dtype}")
    masks = masks.float()
    if check_values and bool(((masks < 0) | (masks > 1) | masks.isnan()).any()):
        raise ValueError("float masks must hold values in [0, 1] (no NaN)")
    return masks
