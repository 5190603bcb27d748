"""Errors and counters shared by the mask sources."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class MaskReadError(Exception):
    """One annotation, image or mask could not be read or decoded. Callers skip the item and count it."""


@dataclass
class SkipCounter:
    """Counts unreadable items per source; each item is counted once, however often it is drawn."""

    seen: dict[str, set[str]] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, source: str, item: str, reason: str) -> bool:
        """Record a skipped item; returns True the first time this item is seen."""
        items = self.seen.setdefault(source, set())
        if item in items:
            return False
        items.add(item)
        self.reasons[reason.split(":")[0]] += 1
        return True

    def count(self, source: str | None = None) -> int:
        if source is not None:
            return len(self.seen.get(source, ()))
        return sum(len(items) for items in self.seen.values())

    def summary(self) -> dict[str, object]:
        return {
            "total": self.count(),
            "per_source": {name: len(items) for name, items in sorted(self.seen.items())},
            "examples": {name: sorted(items)[:5] for name, items in sorted(self.seen.items()) if items},
        }
