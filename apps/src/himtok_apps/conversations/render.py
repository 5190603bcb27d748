"""Turn task fields into a checked ``ConversationSample`` with prompt-templates, plus the geometry tasks need.

Every mask slot is filled with ``placeholder_tokens()`` (32 zeros), which prompt-templates renders as exactly
``PLACEHOLDER``; the masks are given in the order their placeholders appear in the conversation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from himtok_prompt_templates import Sample, build_conversation, get_task, placeholder_tokens
from PIL import Image

from himtok_apps.conversations.sample import ConversationSample, SampleError, validate_sample
from himtok_apps.data.augment import mask_box

MASK = placeholder_tokens()


def check_tasks(weights: Mapping[str, float], known: Mapping[str, object], source: str) -> dict[str, float]:
    """``weights`` if every name is a task ``known`` to the source and one weight is positive, else ValueError."""
    unknown = sorted(set(weights) - set(known))
    if unknown or not any(w > 0 for w in weights.values()) or any(not w >= 0 for w in weights.values()):
        raise ValueError(
            f"{source}: task weights need known tasks ({', '.join(known)}) and one positive weight"
        )
    return dict(weights)


def draw_task(rng: np.random.Generator, weights: Mapping[str, float]) -> list[str]:
    """Every task with positive weight, the first drawn by weight, the rest by decreasing weight (fallbacks)."""
    names = [n for n, w in weights.items() if w > 0]
    probs = np.array([weights[n] for n in names], dtype=np.float64)
    first = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    rest = sorted((n for n in names if n != first), key=lambda n: -weights[n])
    return [first, *rest]


def phrasing_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2), exclusive ends, of a non-empty bool mask."""
    box = mask_box(mask.astype(np.float32))
    if box is None:
        raise SampleError("empty mask: the target has no pixel")
    return box


def interior_point(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A pixel centre (x, y) inside the mask, away from its border where the mask allows it."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    ys, xs = np.nonzero(inner if inner.any() else mask)
    if len(xs) == 0:
        raise SampleError("empty mask: the target has no pixel")
    pick = int(rng.integers(len(xs)))
    return float(xs[pick]) + 0.5, float(ys[pick]) + 0.5


def build_sample(
    task: str,
    fields: Sample,
    masks: Sequence[np.ndarray],
    *,
    image: Image.Image,
    source: str,
    key: str,
    seed: int,
    style: str,
    meta: Mapping[str, object] | None = None,
) -> ConversationSample:
    """The conversation of ``task`` for ``fields`` with ``masks`` in placeholder order, validated."""
    try:
        turns = build_conversation(task, fields, seed=seed, style=style)
    except ValueError as error:  # e.g. an expression holding reserved markup
        raise SampleError(f"bad fields: {error}") from None
    info = {"task": get_task(task).name, **(meta or {})}
    return validate_sample(
        ConversationSample(image, turns, [m.astype(bool) for m in masks], source, key, info)
    )
