"""`--refine sam --sam DIR|sam.pth`: the one place where mask refinement plugs into the runner.

`himtok_sam_refiner.SamRefiner` (issue 16) loads a transformers SAM directory (`from_pretrained`) or the
released HiMTok `sam.pth` (`from_official`); `refine_segmentation` replaces each decoded mask of an answer by
the refined one (the image embedding is computed once for all masks of an image) and returns what SAM said
about each. While the installed package has no `SamRefiner`, `check_refiner` refuses with one plain line.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from himtok_lmm_adapter import Segmentation
from PIL import Image

REFINERS = ("sam",)
Refiner = Any  # himtok_sam_refiner.SamRefiner, imported only when asked for


class RefinerUnavailable(ValueError):
    """The refiner asked for cannot be used here (not built yet, or its weights are missing)."""


def check_refiner(kind: str, path: str | Path | None) -> None:
    """`RefinerUnavailable` (one line) unless `--refine KIND` can be loaded from `path`."""
    if kind not in REFINERS:
        raise RefinerUnavailable(f"--refine {kind!r} is unknown; refiners: {', '.join(REFINERS)}")
    package = importlib.import_module("himtok_sam_refiner")
    if not hasattr(package, "SamRefiner"):
        raise RefinerUnavailable(
            "--refine sam is not available yet: the installed himtok_sam_refiner has no SamRefiner"
        )
    if path is None:
        raise RefinerUnavailable(
            "--refine sam needs --sam DIR (a transformers SAM directory) or --sam sam.pth"
        )
    if not Path(path).exists():
        raise RefinerUnavailable(f"--sam {path} does not exist")


def load_refiner(kind: str, path: str | Path | None, device: torch.device) -> Refiner:
    """The refiner for `--refine KIND` with its weights at `path`, on `device`."""
    check_refiner(kind, path)
    assert path is not None
    cls = importlib.import_module("himtok_sam_refiner").SamRefiner
    path = Path(path)
    try:
        return (
            cls.from_official(path, device=device)
            if path.is_file()
            else cls.from_pretrained(path, device=device)
        )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise RefinerUnavailable(f"cannot load the SAM refiner from {path}: {err}") from None


def refine_segmentation(
    refiner: Refiner, image: Image.Image, segmentation: Segmentation, threshold: float
) -> list[dict[str, Any]]:
    """Replace every mask of `segmentation` (soft and binary, image size) by its refinement; per mask, SAM's
    IoU estimate, whether the coarse mask was kept (`fallback`) and the IoU of refined and coarse masks."""
    coarse = np.stack([m.soft.numpy() for m in segmentation.masks])
    result = refiner.refine([image], [coarse])
    notes = []
    for k, mask in enumerate(segmentation.masks):
        soft = torch.from_numpy(np.asarray(result.probs[k], dtype=np.float32)).reshape(mask.soft.shape)
        mask.soft = soft
        mask.binary = soft > threshold
        notes.append(
            {
                "sam_iou": _number(result.iou[k]),
                "fallback": bool(result.fallback[k]),
                "agreement": _number(result.agreement[k]),
            }
        )
    return notes


def _number(value: Any) -> float | None:
    number = float(value)
    return None if number != number else round(number, 4)
