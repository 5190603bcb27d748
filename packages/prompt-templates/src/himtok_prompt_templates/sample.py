"""What a task needs to know about one training or evaluation example."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from himtok_prompt_templates.tokens import (
    BOX_END,
    BOX_START,
    IMAGE_TOKEN,
    POINT_END,
    POINT_START,
    REF_END,
    REF_START,
)

# Text fields must not contain markup that the parser would read as structure.
_RESERVED = ("<|mt_", REF_START, REF_END, BOX_START, BOX_END, POINT_START, POINT_END, IMAGE_TOKEN)


def check_plain_text(value: object, field: str) -> str:
    """``value`` as a non-empty string free of reserved markup, else ``ValueError`` naming ``field``."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{field} must not be empty")
    for marker in _RESERVED:
        if marker in value:
            raise ValueError(f"{field} must not contain the reserved markup {marker!r}: {value!r}")
    return value


@dataclass(frozen=True)
class Target:
    """One target of a multi-target sample: its expression and its mask tokens."""

    expression: str
    tokens: Sequence[int]


@dataclass(frozen=True)
class Sample:
    """Slot values for a task; each task reads only the fields it needs and names any that are missing.

    Boxes and points are in pixels of a ``width`` x ``height`` image (pass ``width=height=999`` to give
    coordinates that are already on the 0..999 grid). ``answer`` is a bool for ``exists`` (present or not;
    when None, present means ``tokens`` were given), the answer object's text for ``reasoning``, and the chosen
    option (index or text) for ``mask_perception``. ``n_tokens`` keeps the first n tokens (coarse to fine).
    """

    expression: str | None = None
    tokens: Sequence[int] | None = None
    box: Sequence[float] | None = None
    points: Sequence[Sequence[float]] | None = None
    width: float | None = None
    height: float | None = None
    options: Sequence[str] | None = None
    answer: bool | int | str | None = None
    question: str | None = None
    n_tokens: int | None = None
    targets: Sequence[Target] | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> Sample:
        """A sample from a dict; ``targets`` may be dicts with ``expression`` and ``tokens``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown sample fields {sorted(unknown)}; known fields: {sorted(known)}")
        values = dict(data)
        targets = values.get("targets")
        if targets is not None:
            if isinstance(targets, str | bytes) or not isinstance(targets, Sequence):
                raise ValueError("targets must be a list of {'expression', 'tokens'} items")
            values["targets"] = tuple(_as_target(t, i) for i, t in enumerate(targets))
        return cls(**values)  # type: ignore[arg-type]


def _as_target(item: object, index: int) -> Target:
    if isinstance(item, Target):
        return item
    if isinstance(item, Mapping) and set(item) == {"expression", "tokens"}:
        return Target(item["expression"], item["tokens"])
    raise ValueError(f"targets[{index}] must be a Target or a dict with exactly 'expression' and 'tokens'")


def as_sample(sample: Sample | Mapping[str, object]) -> Sample:
    if isinstance(sample, Sample):
        return sample
    if isinstance(sample, Mapping):
        return Sample.from_mapping(sample)
    raise ValueError(f"sample must be a Sample or a mapping, got {type(sample).__name__}")
