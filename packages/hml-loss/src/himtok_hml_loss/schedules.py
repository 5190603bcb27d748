"""Label schedules: how the target for a partial level l is derived from the full mask.

* ``"paper"`` (HiMTok, Appendix B): Gaussian blur with sigma(l) = 100 / (l + 1) - 2, truncated at 3 sigma with
  scipy's rounding (radius = int(3 sigma + 0.5)), zero outside the image.
* ``"official"`` (what the official LMM code computes): sigma(l) = 100 / l - 2, radius = ceil(3 sigma), zero
  outside the image, then every label is divided by its own maximum (clamped at 1e-6).
* ``"resize"`` (the official tokenizer-stage losses): bilinear down-sampling to a side of
  max(16, round((l / 32) ** 1.5 * 256)) pixels for a 256-pixel side, then bilinear up-sampling back.

For every schedule the full level (l = max_len) is the mask itself.
"""

from __future__ import annotations

import math
from typing import Literal

Schedule = Literal["paper", "official", "resize"]
SCHEDULES: tuple[str, ...] = ("paper", "official", "resize")


def check_schedule(schedule: str) -> str:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown label schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    return schedule


def paper_sigma(level: int) -> float:
    """sigma(l) = 100 / (l + 1) - 2 (HiMTok paper, Appendix B)."""
    return 100.0 / (level + 1) - 2.0


def official_sigma(level: int) -> float:
    """sigma(l) = 100 / l - 2: the official code's 100 / (idx + 2) - 2 with idx = l - 2."""
    return 100.0 / level - 2.0


def paper_radius(sigma: float) -> int:
    """Kernel radius for a 3-sigma truncation, rounded like scipy.ndimage.gaussian_filter(truncate=3)."""
    return int(3.0 * sigma + 0.5) if sigma > 0 else 0


def official_radius(sigma: float) -> int:
    """Kernel radius of the official code: the kernel has 2 * ceil(3 sigma) + 1 taps."""
    return math.ceil(3.0 * sigma) if sigma > 0 else 0


def blur_parameters(schedule: str, level: int, max_len: int) -> tuple[float, int]:
    """(sigma, radius) of the Gaussian for ``level``; radius 0 means the label is the mask itself."""
    if level >= max_len:
        return 1.0, 0
    if schedule == "paper":
        sigma = paper_sigma(level)
        return (sigma, paper_radius(sigma)) if sigma > 0 else (1.0, 0)
    if schedule == "official":
        sigma = official_sigma(level)
        return (sigma, official_radius(sigma)) if sigma > 0 else (1.0, 0)
    raise ValueError(f"schedule {schedule!r} is not a blur schedule")


def resize_side(level: int, size: int, max_len: int = 32) -> int:
    """Side of the down-sampled label for the ``"resize"`` schedule.

    For size 256 and max_len 32 this is the official max(16, round((l / 32) ** 1.5 * 256)) (Python's round, as
    there). Other sizes scale the same rule: the floor is 16 / 256 of the side, and nothing exceeds ``size``.
    """
    floor = max(1, round(16 * size / 256))
    return min(size, max(floor, round((level / max_len) ** 1.5 * size)))
