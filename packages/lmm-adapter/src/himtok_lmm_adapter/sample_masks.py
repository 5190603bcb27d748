"""Ground-truth masks given per sample: one tensor for the batch, or a list with None for mask-less samples."""

from __future__ import annotations

from collections.abc import Sequence

import torch

MasksArg = torch.Tensor | Sequence[torch.Tensor | None]


def masks_per_sample(
    masks: MasksArg, batch_size: int, has_mask: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Normalise the ways a batch's masks can be given to a list of B tensors [n_b, H, W] (n_b may be 0).

    - a tensor [B, H, W] (or [B, 1, H, W]): one mask per sample; `has_mask` (bool [B]) marks the samples that
      really have one (the others hold a dummy, e.g. the official all-zero mask, and are skipped);
    - a sequence of B items, each None (no mask), [H, W] (one mask) or [n, H, W] (n masks, in span order).
    """
    if isinstance(masks, torch.Tensor):
        if masks.dim() == 4 and masks.shape[1] == 1:
            masks = masks[:, 0]
        if masks.dim() != 3 or masks.shape[0] != batch_size:
            raise ValueError(f"masks must be [B={batch_size}, H, W], got shape {tuple(masks.shape)}")
        keep = torch.ones(batch_size, dtype=torch.bool) if has_mask is None else torch.as_tensor(has_mask)
        if keep.shape != (batch_size,) or keep.dtype != torch.bool:
            raise ValueError(
                f"has_mask must be a bool tensor [B={batch_size}], got {keep.dtype} {tuple(keep.shape)}"
            )
        return [masks[b : b + 1] if keep[b] else masks[b:b] for b in range(batch_size)]
    if has_mask is not None:
        raise ValueError(
            "has_mask only applies to masks given as one [B, H, W] tensor; use None items instead"
        )
    items = list(masks)
    if len(items) != batch_size:
        raise ValueError(f"masks has {len(items)} items but the batch has {batch_size} samples")
    out = []
    for b, item in enumerate(items):
        if item is None:
            out.append(torch.zeros(0, 1, 1))
            continue
        item = torch.as_tensor(item)
        if item.dim() == 2:
            item = item[None]
        if item.dim() != 3:
            raise ValueError(f"masks[{b}] must be [H, W] or [n, H, W], got shape {tuple(item.shape)}")
        out.append(item)
    return out
