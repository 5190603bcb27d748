"""Errors and counters shared by the mask sources."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


class MaskReadError(Exception):
    """One annotation, image or mask could not be read or decoded. Callers skip the item and count it."""


@dataclass
class SkipCounter:
    """Counts unreadable items per source; each item is counted once, however often it is drawn.

    Reasons read ``"category: detail"``; ``reasons`` counts the categories. With ``echo`` set (e.g.
    ``tqdm.write``), the first ``echo_limit`` skips are printed as one line each, then one line saying that
    further skips are only counted.
    """

    seen: dict[str, set[str]] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    echo: Callable[[str], object] | None = None
    echo_limit: int = 5
    echoed: int = 0

    def add(self, source: str, item: str, reason: str) -> bool:
        """Record a skipped item; returns True the first time this item is seen."""
        items = self.seen.setdefault(source, set())
        if item in items:
            return False
        items.add(item)
        self.reasons[reason.split(":")[0]] += 1
        if self.echo is not None and self.echoed < self.echo_limit:
            self.echoed += 1
            self.echo(f"skipped {item} of {source}: {reason}")
            if self.echoed == self.echo_limit:
                self.echo(f"(only the first {self.echo_limit} skips are printed; the rest are counted)")
        return True

    def count(self, source: str | None = None) -> int:
        if source is not None:
            return len(self.seen.get(source, ()))
        return sum(len(items) for items in self.seen.values())

    def summary(self) -> dict[str, object]:
        return {
            "total": self.count(),
            "reasons": dict(self.reasons),
            "per_source": {name: len(items) for name, items in sorted(self.seen.items())},
            "examples": {name: sorted(items)[:5] for name, items in sorted(self.seen.items()) if items},
        }
