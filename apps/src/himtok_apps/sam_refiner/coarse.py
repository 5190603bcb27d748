"""Coarse masks for refiner training: the ground truth through a mask tokenizer at a random number of tokens,
then randomly dilated or eroded, so the refiner sees the blurred, shifted edges of an LMM's answers.

Dilation and erosion act on the probability map (grey-level max / min filters), with an octagonal footprint
(3x3 squares and crosses in turn) whose radius is a fraction of the image's long side. The image border is
neutral: a mask cut by the frame is not eroded from the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from himtok_mask_tokenizer import MaskTokenizer


@dataclass(frozen=True)
class CoarseSettings:
    """min_tokens..max_tokens: the number of tokens decoded (uniform); morph_prob: the chance of a dilation or
    an erosion (one half each); max_radius: the largest radius, as a fraction of the image's long side."""

    min_tokens: int = 1
    max_tokens: int = 32
    morph_prob: float = 0.5
    max_radius: float = 0.04

    def __post_init__(self) -> None:
        if not 1 <= self.min_tokens <= self.max_tokens <= 32:
            raise ValueError(
                f"need 1 <= min_tokens <= max_tokens <= 32, got {self.min_tokens}, {self.max_tokens}"
            )
        if not 0 <= self.morph_prob <= 1 or not 0 <= self.max_radius <= 0.25:
            raise ValueError(f"morph_prob in [0, 1] and max_radius in [0, 0.25], got {self}")


def morph(probs: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey dilation (radius > 0) or erosion (radius < 0) of a [H, W] map by an octagon of that radius."""
    x = probs[None, None]
    sign = 1.0 if radius > 0 else -1.0
    x = sign * x
    for step in range(abs(radius)):
        if step % 2 == 0:
            x = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            rows = F.max_pool2d(x, (3, 1), stride=1, padding=(1, 0))
            x = torch.maximum(rows, F.max_pool2d(x, (1, 3), stride=1, padding=(0, 1)))
    return (sign * x)[0, 0]


class CoarseMaskMaker:
    """``maker(masks, rng)``: one coarse probability map (float32, the mask's size) per ground-truth mask."""

    def __init__(self, tokenizer: MaskTokenizer, settings: CoarseSettings | None = None) -> None:
        self.tokenizer = tokenizer.eval()
        self.settings = settings or CoarseSettings()

    def draw(self, rng: np.random.Generator, size: tuple[int, int]) -> tuple[int, int]:
        """(tokens, signed radius in pixels) for a mask of `size`."""
        settings = self.settings
        tokens = int(rng.integers(settings.min_tokens, settings.max_tokens + 1))
        radius = 0
        if rng.random() < settings.morph_prob:
            largest = round(settings.max_radius * max(size))
            if largest >= 1:
                radius = int(rng.integers(1, largest + 1)) * (1 if rng.random() < 0.5 else -1)
        return tokens, radius

    def __call__(self, masks: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        draws = [self.draw(rng, mask.shape[:2]) for mask in masks]
        return self.make(masks, [t for t, _ in draws], [r for _, r in draws])

    @torch.no_grad()
    def make(
        self, masks: Sequence[np.ndarray], tokens: Sequence[int], radii: Sequence[int]
    ) -> list[np.ndarray]:
        """The deterministic part: mask i decoded from its first tokens[i] tokens, then morphed by radii[i]."""
        if not len(masks) == len(tokens) == len(radii):
            raise ValueError(f"got {len(masks)} masks, {len(tokens)} token counts and {len(radii)} radii")
        device = next(self.tokenizer.parameters()).device
        codes: dict[int, torch.Tensor] = {}
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, mask in enumerate(masks):
            if mask.ndim != 2:
                raise ValueError(f"masks[{i}]: expected [H, W], got shape {mask.shape}")
            by_size.setdefault(mask.shape, []).append(i)
        for members in by_size.values():  # the tokenizer encodes same-size masks in one batch
            stack = torch.from_numpy(np.stack([np.asarray(masks[i], dtype=np.float32) for i in members]))
            encoded = self.tokenizer.encode(stack.to(device))
            codes.update(zip(members, encoded, strict=True))
        out: list[np.ndarray] = [np.empty(0, np.float32)] * len(masks)
        by_decode: dict[tuple[int, tuple[int, int]], list[int]] = {}
        for i, mask in enumerate(masks):
            by_decode.setdefault((int(tokens[i]), mask.shape), []).append(i)
        for (count, size), members in by_decode.items():
            batch = torch.stack([codes[i][:count] for i in members])
            probs = self.tokenizer.decode(batch, size=size).float().cpu()
            for i, prob in zip(members, probs, strict=True):
                shaped = morph(prob, int(radii[i])) if radii[i] else prob
                out[i] = shaped.clamp(0.0, 1.0).numpy().astype(np.float32)
        return out
