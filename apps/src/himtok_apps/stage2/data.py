"""The trainer's view of `himtok_apps.conversations`: the training mixture and the held-out samples."""

from __future__ import annotations

from collections.abc import Sequence

from himtok_apps.conversations import (
    ConversationMixture,
    ConversationSample,
    SampleError,
    build_conversation_mixture,
    build_conversation_source,
    held_out_shapes,
    parse_conversation_spec,
)
from himtok_apps.data.errors import SkipCounter


def training_mixture(specs: Sequence[str], *, seed: int, skips: SkipCounter) -> ConversationMixture:
    """The weighted mixture of the `--data` sources (sample n is a pure function of the seed and n)."""
    return build_conversation_mixture(list(specs), seed=seed, skips=skips)


def held_out_samples(specs: Sequence[str], n: int, seed: int) -> list[ConversationSample]:
    """`n` evaluation samples split evenly over `specs`: unseen scenes for `shapes:`, the first usable
    records of the other sources (give those a held-out file)."""
    out: list[ConversationSample] = []
    per_spec = [n // len(specs) + (1 if i < n % len(specs) else 0) for i in range(len(specs))]
    for spec, count in zip(specs, per_spec, strict=True):
        if parse_conversation_spec(spec).kind == "shapes":
            out.extend(held_out_shapes(count, spec, seed=seed))
            continue
        source = build_conversation_source(spec)
        taken = 0
        for index in range(len(source)):
            if taken == count:
                break
            try:
                out.append(source.sample(index))
            except SampleError:
                continue
            taken += 1
    return out


def check_specs(specs: Sequence[str]) -> None:
    """Parse every spec (one-line `ValueError` for a bad one) without reading the data."""
    for spec in specs:
        parse_conversation_spec(spec)
