"""A weighted mixture of conversation sources: deterministic, resumable, rank-sharded, like ``MaskMixture``.

Global sample ``n`` (all ranks together) is a pure function of ``(seed, n)``: the source is drawn with
probability proportional to its weight, then an index uniformly; the source's own ``sample(index)`` is
deterministic too. Rank ``r`` of ``W`` takes samples ``(step * W + r) * batch_size + i`` of step ``step``, so
resuming at a step continues exactly where a run stopped. A record that cannot be used is skipped (counted
once in ``skips``, the first few printed when ``skips.echo`` is set) and the draw repeated with the next
attempt number; it never raises mid-training unless ``MAX_ATTEMPTS`` draws in a row fail.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from himtok_apps.conversations.sample import ConversationSample
from himtok_apps.conversations.source import ConversationSource
from himtok_apps.data.errors import MaskReadError, SkipCounter

MAX_ATTEMPTS = 32


class ConversationMixture:
    def __init__(
        self,
        sources: Sequence[ConversationSource],
        weights: Sequence[float] | None = None,
        *,
        seed: int = 0,
        skips: SkipCounter | None = None,
    ) -> None:
        if not sources:
            raise ValueError("a mixture needs at least one source")
        weights = [1.0] * len(sources) if weights is None else list(weights)
        if len(weights) != len(sources) or any(not w > 0 for w in weights):
            raise ValueError(f"need one positive weight per source, got {weights}")
        empty = [s.name for s in sources if len(s) == 0]
        if empty:
            raise ValueError(f"sources without any record: {', '.join(empty)}")
        self.sources = list(sources)
        total = sum(weights)
        self.probs = np.array([w / total for w in weights])
        self.seed = seed
        self.skips = skips if skips is not None else SkipCounter()

    def draw(self, n: int, attempt: int = 0) -> tuple[int, int]:
        """(source number, index) of global sample ``n`` at ``attempt``."""
        rng = np.random.default_rng([self.seed, n, attempt])
        which = int(rng.choice(len(self.sources), p=self.probs))
        return which, int(rng.integers(len(self.sources[which])))

    def sample(self, n: int) -> ConversationSample:
        """Global sample ``n``."""
        for attempt in range(MAX_ATTEMPTS):
            which, index = self.draw(n, attempt)
            source = self.sources[which]
            try:
                return source.sample(index)
            except MaskReadError as error:
                self.skips.add(source.name, source.item_key(index), str(error))
        raise RuntimeError(
            f"no usable conversation after {MAX_ATTEMPTS} draws for sample {n}: is the data corrupt?"
        )

    def batch(
        self, step: int, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> list[ConversationSample]:
        """This rank's share of global batch ``step``."""
        first = (step * world_size + rank) * batch_size
        return [self.sample(first + i) for i in range(batch_size)]
