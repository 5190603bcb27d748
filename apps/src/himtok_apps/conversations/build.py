"""Turn conversation ``--data`` specs into sources and mixtures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from himtok_apps.conversations.coco import CocoConversationSource
from himtok_apps.conversations.mixture import ConversationMixture
from himtok_apps.conversations.official import OfficialSource
from himtok_apps.conversations.refexp import RefexpSource
from himtok_apps.conversations.shapes import ShapesSource
from himtok_apps.conversations.source import ConversationSource
from himtok_apps.conversations.spec import ConversationSpec, parse_conversation_spec
from himtok_apps.data.errors import SkipCounter


def build_conversation_source(
    spec: str | ConversationSpec, skips: SkipCounter | None = None
) -> ConversationSource:
    """The source a spec names; a bad spec or a source without any usable record raises a one-line ValueError."""
    parsed = parse_conversation_spec(spec) if isinstance(spec, str) else spec
    name = parsed.text or parsed.kind
    source: ConversationSource
    try:
        if parsed.kind == "shapes":
            source = ShapesSource.from_spec(parsed)
        elif parsed.kind == "official":
            assert parsed.path is not None
            source = OfficialSource(parsed.path, parsed.extra, limit=parsed.integer("limit"), name=name)
        elif parsed.kind == "refexp":
            assert parsed.path is not None
            root = parsed.option("root")
            source = RefexpSource(
                parsed.path,
                Path(str(root)) if root else parsed.extra,
                tasks=parsed.tasks,
                seed=parsed.seed,
                style=parsed.style,
                limit=parsed.integer("limit"),
                skips=skips,
                name=name,
            )
        elif parsed.kind == "coco":
            assert parsed.path is not None
            source = CocoConversationSource(
                parsed.path,
                parsed.extra,
                tasks=parsed.tasks,
                seed=parsed.seed,
                style=parsed.style,
                min_area=parsed.number("min_area", 0.0),
                absent=parsed.number("absent", 0.3),
                variants=parsed.integer("variants", 8) or 8,
                limit=parsed.integer("limit"),
                skips=skips,
                name=name,
            )
        else:  # parse_conversation_spec only lets the known kinds through
            raise ValueError(f"unknown conversation kind {parsed.kind!r}")
    except ValueError as error:
        message = str(error)
        raise ValueError(message if name in message else f"--data {name!r}: {message}") from None
    if len(source) == 0:
        raise ValueError(f"--data {name!r}: no usable record found")
    return source


def build_conversation_mixture(
    specs: Sequence[str | ConversationSpec], *, seed: int = 0, skips: SkipCounter | None = None
) -> ConversationMixture:
    """One source per spec, mixed by the specs' weights."""
    parsed = [parse_conversation_spec(s) if isinstance(s, str) else s for s in specs]
    skips = skips if skips is not None else SkipCounter()
    sources = [build_conversation_source(p, skips) for p in parsed]
    return ConversationMixture(sources, [p.weight for p in parsed], seed=seed, skips=skips)
