"""Per-level 1-D label operators, precomputed once per (schedule, side, device).

Every schedule is separable and linear before its optional normalisation: a label is ``R @ mask @ C.T`` with
one ``size x size`` matrix per axis and level. For a Gaussian the matrix is the truncated kernel laid out as
a band (zero padding falls out of the band being cut at the image edge); for ``"resize"`` it is bilinear
down-sampling followed by bilinear up-sampling. Expressing the blur as a matrix product costs the same for
every sigma (sigma 98 has a 589-tap kernel, wider than a 256-pixel image), batches all levels in one BLAS
call and needs no FFT padding.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from himtok_hml_loss.schedules import blur_parameters, check_schedule, resize_side


def gaussian_band(sigma: float, radius: int, size: int) -> Tensor:
    """``[size, size]`` float64 matrix of a zero-padded 'same' correlation with a normalised truncated Gaussian."""
    if radius == 0:
        return torch.eye(size, dtype=torch.float64)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    norm = torch.exp(-0.5 * (taps / sigma) ** 2).sum()
    offsets = (
        torch.arange(size, dtype=torch.float64)[None, :] - torch.arange(size, dtype=torch.float64)[:, None]
    )
    band = torch.exp(-0.5 * (offsets / sigma) ** 2) / norm
    return torch.where(offsets.abs() <= radius, band, torch.zeros_like(band))


def _interpolation_matrix(size_in: int, size_out: int) -> Tensor:
    """``[size_out, size_in]`` matrix of 1-D bilinear resampling (align_corners=False, no antialias)."""
    eye = torch.eye(size_in, dtype=torch.float64)[None, None]
    return F.interpolate(eye, size=(size_out, size_in), mode="bilinear", align_corners=False)[0, 0]


def resize_band(side: int, size: int) -> Tensor:
    """``[size, size]`` float64 matrix: bilinear down-sampling to ``side`` pixels, then back up to ``size``."""
    if side >= size:
        return torch.eye(size, dtype=torch.float64)
    return _interpolation_matrix(side, size) @ _interpolation_matrix(size, side)


def build_operators(schedule: str, size: int, max_len: int) -> Tensor:
    """``[max_len + 1, size, size]`` float64; row l is the operator of level l (rows 0 and max_len: identity)."""
    check_schedule(schedule)
    mats = [torch.eye(size, dtype=torch.float64)]
    for level in range(1, max_len + 1):
        if schedule == "resize":
            mats.append(resize_band(resize_side(level, size, max_len), size))
        else:
            sigma, radius = blur_parameters(schedule, level, max_len)
            mats.append(gaussian_band(sigma, radius, size))
    return torch.stack(mats)


@lru_cache(maxsize=16)
def level_operators(schedule: str, size: int, max_len: int, device: torch.device) -> Tensor:
    """Cached float32 operators of :func:`build_operators` on ``device`` (built in float64 on the CPU)."""
    return build_operators(schedule, size, max_len).to(device=device, dtype=torch.float32)
