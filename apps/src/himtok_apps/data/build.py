"""Turn parsed ``--data`` specs into mask sources."""

from __future__ import annotations

from himtok_apps.data.coco import CocoSource
from himtok_apps.data.errors import SkipCounter
from himtok_apps.data.jsonl import JsonlSource
from himtok_apps.data.labelmap import LabelMapSource
from himtok_apps.data.pngdir import PngDirSource
from himtok_apps.data.shapes_masks import ShapesMaskSource
from himtok_apps.data.source import MaskSource
from himtok_apps.data.spec import DataSpec


def build_source(spec: DataSpec, skips: SkipCounter | None = None) -> MaskSource:
    """The source a spec names; a source that holds no usable mask raises ``ValueError``."""
    context, limit, name = spec.context, spec.limit, spec.text
    source: MaskSource
    if spec.kind == "coco":
        crowd = bool(spec.options.get("crowd", 0))
        source = CocoSource(
            spec.path,
            spec.extra,
            min_area=spec.min_area,
            crowd=crowd,
            context=context,
            limit=limit,
            skips=skips,
            name=name,
        )
    elif spec.kind == "pngdir":
        source = PngDirSource(
            spec.path, min_area=spec.min_area, context=context, limit=limit, skips=skips, name=name
        )
    elif spec.kind == "labelmap":
        ignore = spec.options.get("ignore")
        source = LabelMapSource(
            spec.path,
            spec.extra,
            ignore=[int(v) for v in ignore] if isinstance(ignore, list) else None,
            min_area=spec.min_area,
            context=context,
            limit=limit,
            skips=skips,
            name=name,
        )
    elif spec.kind == "shapes":
        source = ShapesMaskSource(
            seed=int(spec.options.get("seed", 0)),  # type: ignore[call-overload]
            size=int(spec.options.get("size", 112)),  # type: ignore[call-overload]
            items=int(spec.options.get("items", 200_000)),  # type: ignore[call-overload]
            context=context,
            name=name,
        )
    elif spec.kind == "jsonl":
        source = JsonlSource(spec.path, spec.extra, context=context, limit=limit, skips=skips, name=name)
    else:  # parse_data_spec only lets the known kinds through
        raise ValueError(f"unknown data kind {spec.kind!r}")
    if len(source) == 0:
        raise ValueError(f"--data {spec.text!r}: no usable mask found")
    source.augment = spec.augment
    return source
