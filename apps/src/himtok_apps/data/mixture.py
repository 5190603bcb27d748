"""A weighted mixture of mask sources that renders deterministic, resumable, rank-sharded batches.

Sample number ``n`` of the global stream (all ranks together) is a pure function of ``(seed, n)``: the
source is drawn with probability proportional to its weight, then an item uniformly (with replacement),
then the augmentation. The data position is therefore just ``n``: resuming at step ``t`` continues exactly
where the run stopped, and rank ``r`` of ``W`` takes its own disjoint slice of each global batch.
An unreadable item is skipped (counted once) and the sample redrawn with the next attempt number.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from himtok_apps.data.augment import AugmentConfig, render_mask
from himtok_apps.data.errors import MaskReadError, SkipCounter
from himtok_apps.data.source import MaskSource

MAX_ATTEMPTS = 32


class MaskMixture:
    def __init__(
        self,
        sources: Sequence[MaskSource],
        weights: Sequence[float] | None = None,
        *,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        skips: SkipCounter | None = None,
    ) -> None:
        if not sources:
            raise ValueError("a mixture needs at least one source")
        weights = [1.0] * len(sources) if weights is None else list(weights)
        if len(weights) != len(sources) or any(not w > 0 for w in weights):
            raise ValueError(f"need one positive weight per source, got {weights}")
        self.sources = list(sources)
        total = sum(weights)
        self.probs = np.array([w / total for w in weights])
        self.seed = seed
        self.augment = augment if augment is not None else AugmentConfig()
        self.skips = skips if skips is not None else SkipCounter()

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def sample(self, n: int) -> np.ndarray:
        """Global sample ``n``: float32 [size, size] in [0, 1]."""
        for attempt in range(MAX_ATTEMPTS):
            rng = np.random.default_rng([self.seed, n, attempt])
            source = self.sources[int(rng.choice(len(self.sources), p=self.probs))]
            index = int(rng.integers(len(source)))
            try:
                mask = source.load(index)
            except MaskReadError as error:
                self.skips.add(source.name, source.item_name(index), str(error))
                continue
            return render_mask(mask, source.context, rng if source.augment else None, self.augment)
        raise RuntimeError(
            f"no readable mask after {MAX_ATTEMPTS} draws for sample {n}: is the data corrupt?"
        )

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        """This rank's share of global batch ``step``: float32 [batch_size, size, size]."""
        first = (step * world_size + rank) * batch_size
        return torch.from_numpy(np.stack([self.sample(first + i) for i in range(batch_size)]))


def render_validation(
    source: MaskSource, limit: int | None = None, size: int = 256, skips: SkipCounter | None = None
) -> torch.Tensor:
    """The first ``limit`` readable masks of ``source`` rendered without randomness: float32 [N, size, size]."""
    skips = skips if skips is not None else SkipCounter()
    config = AugmentConfig(size=size)
    masks: list[np.ndarray] = []
    for index in range(len(source)):
        if limit is not None and len(masks) >= limit:
            break
        try:
            mask = source.load(index)
        except MaskReadError as error:
            skips.add(source.name, source.item_name(index), str(error))
            continue
        masks.append(render_mask(mask, source.context, None, config))
    if not masks:
        raise ValueError(f"validation source {source.name!r} has no readable mask")
    return torch.from_numpy(np.stack(masks))
