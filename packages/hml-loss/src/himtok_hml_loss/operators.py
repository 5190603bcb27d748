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
from torch import Tensor

from himtok_hml_loss.blocks import single_threaded
from himtok_hml_loss.schedules import blur_parameters, check_schedule, resize_side


def gaussian_bands(sigmas: Tensor, radii: Tensor, size: int) -> Tensor:
    """``[L, size, size]`` float64 matrices of zero-padded 'same' correlations with normalised truncated
    Gaussians (one per sigma and radius); radius 0 gives the identity."""
    sigmas = sigmas.to(torch.float64)[:, None, None]
    radii = radii.to(torch.float64)[:, None, None]
    span = int(radii.max().item()) if radii.numel() else 0
    taps = torch.arange(-span, span + 1, dtype=torch.float64)[None, None, :]
    norms = torch.where(taps.abs() <= radii, torch.exp(-0.5 * (taps / sigmas) ** 2), 0.0).sum(
        -1, keepdim=True
    )
    positions = torch.arange(size, dtype=torch.float64)
    offsets = (positions[None, :] - positions[:, None])[None]
    weights = torch.exp(-0.5 * (offsets / sigmas) ** 2) / norms
    return torch.where(offsets.abs() <= radii, weights, 0.0)


def interpolation_matrix(size_in: int, size_out: int) -> Tensor:
    """``[size_out, size_in]`` float64 matrix of torch's 1-D bilinear resampling (align_corners=False, no
    antialias): source = (i + 0.5) * size_in / size_out - 0.5, clamped at 0, linear between neighbours."""
    source = ((torch.arange(size_out, dtype=torch.float64) + 0.5) * (size_in / size_out) - 0.5).clamp_min(0.0)
    left = source.floor().long().clamp_max(size_in - 1)
    right = (left + 1).clamp_max(size_in - 1)
    frac = source - left
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    matrix.index_put_((rows, left), 1.0 - frac, accumulate=True)
    matrix.index_put_((rows, right), frac, accumulate=True)
    return matrix


def resize_band(side: int, size: int) -> Tensor:
    """``[size, size]`` float64 matrix: bilinear down-sampling to ``side`` pixels, then back up to ``size``."""
    if side >= size:
        return torch.eye(size, dtype=torch.float64)
    return interpolation_matrix(side, size) @ interpolation_matrix(size, side)


def build_operators(schedule: str, size: int, max_len: int) -> Tensor:
    """``[max_len + 1, size, size]`` float64; row l is the operator of level l (rows 0 and max_len: identity)."""
    check_schedule(schedule)
    if schedule == "resize":
        mats = [torch.eye(size, dtype=torch.float64)]
        mats += [resize_band(resize_side(level, size, max_len), size) for level in range(1, max_len + 1)]
        return torch.stack(mats)
    params = [(1.0, 0)] + [blur_parameters(schedule, level, max_len) for level in range(1, max_len + 1)]
    sigmas = torch.tensor([sigma for sigma, _ in params], dtype=torch.float64)
    radii = torch.tensor([radius for _, radius in params], dtype=torch.float64)
    return gaussian_bands(sigmas, radii, size)


Tile = tuple[int, int, int, int]


def band_tiles(operator: Tensor, tile: int) -> tuple[Tile, ...]:
    """Row tiles ``(r0, r1, c0, c1)`` such that rows r0:r1 of ``operator`` are zero outside columns c0:c1.

    A narrow Gaussian touches few columns per tile, so ``operator @ x`` can skip most of the product. When
    the tiles would still cover more than 3/4 of the matrix, one dense tile is returned instead.
    """
    size = operator.shape[0]
    nonzero = operator != 0
    tiles = []
    for r0 in range(0, size, tile):
        r1 = min(size, r0 + tile)
        cols = nonzero[r0:r1].any(0).nonzero()[:, 0].tolist()
        c0, c1 = (cols[0], cols[-1] + 1) if cols else (r0, r1)
        tiles.append((r0, r1, c0, c1))
    if sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in tiles) > 0.75 * size * size:
        return ((0, size, 0, size),)
    return tuple(tiles)


@lru_cache(maxsize=16)
def level_tiles(schedule: str, size: int, max_len: int) -> tuple[tuple[Tile, ...], ...]:
    """:func:`band_tiles` of every level's operator (index = level), with tiles of a quarter side (>= 32)."""
    operators = level_operators(schedule, size, max_len, torch.device("cpu"))
    return tuple(band_tiles(op, max(32, size // 4)) for op in operators)


@lru_cache(maxsize=16)
def level_operators(schedule: str, size: int, max_len: int, device: torch.device) -> Tensor:
    """Cached float32 operators of :func:`build_operators` on ``device`` (built in float64 on the CPU)."""
    with single_threaded():  # dozens of small float64 products: threads only add synchronisation
        operators = build_operators(schedule, size, max_len)
    return operators.to(device=device, dtype=torch.float32)
