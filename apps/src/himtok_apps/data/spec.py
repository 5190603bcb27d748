"""Parse ``--data`` specifications: ``KIND:PATH[,PATH2][?key=value&...][:weight]`` (``*weight`` works too).

Examples::

    coco:instances_train.json                      all non-crowd masks of a COCO instance JSON
    coco:ann.json,images?min_area=0.01&context=1.5  masks covering >=1% of the image, object-centred crops
    pngdir:davis2016-val:0.5                       every PNG under the folder, mixture weight 0.5
    labelmap:camvid-labels/train,camvid-labels/classes.json?ignore=11
    jsonl:anns/seg_data_with_mask.jsonl            the official format's ``mask`` field
    coco:instances_train.json?limit=4&augment=0    four masks, rendered without random crops or flips

Everything is checked here (kind, paths, option names and values, weight), so a bad spec fails before any
work with a one-line ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("coco", "pngdir", "labelmap", "jsonl", "shapes")
COMMON_OPTIONS = {"context": float, "min_area": float, "limit": int, "augment": int}
KIND_OPTIONS: dict[str, dict[str, type]] = {
    "coco": {"crowd": int},
    "pngdir": {},
    "labelmap": {"ignore": int},
    "jsonl": {},
    "shapes": {"seed": int, "size": int, "items": int},
}
# (required, optional) positional paths per kind; the optional one may be a file or folder.
KIND_PATHS = {
    "coco": ("ANNOTATIONS_JSON", "IMAGES_DIR"),
    "pngdir": ("DIR", None),
    "labelmap": ("DIR", "CLASSES_JSON"),
    "jsonl": ("FILE", "ROOT_DIR"),
    "shapes": ("", None),  # generated: no path (``shapes:`` or ``shapes:?seed=3``)
}


@dataclass(frozen=True)
class DataSpec:
    """One parsed ``--data`` source."""

    kind: str
    path: Path
    extra: Path | None = None
    weight: float = 1.0
    options: dict[str, object] = field(default_factory=dict)
    text: str = ""

    @property
    def context(self) -> float | None:
        value = self.options.get("context")
        return float(value) if value is not None else None  # type: ignore[arg-type]

    @property
    def min_area(self) -> float:
        return float(self.options.get("min_area", 0.0))  # type: ignore[arg-type]

    @property
    def augment(self) -> bool:
        """False (``augment=0``): training renders this source like validation, no random crops or flips."""
        return bool(self.options.get("augment", 1))

    @property
    def limit(self) -> int | None:
        value = self.options.get("limit")
        return int(value) if value is not None else None  # type: ignore[call-overload]


def split_weight(body: str, text: str) -> tuple[str, float]:
    """Split a trailing ``:weight`` (or ``*weight``) off ``body``; no weight means 1.0."""
    cut = max(body.rfind(":"), body.rfind("*"))
    if cut < 0:
        return body, 1.0
    head, tail = body[:cut], body[cut + 1 :]
    try:
        weight = float(tail)
    except ValueError:
        # Not a number: the colon belongs to the path (e.g. a drive letter); no weight given.
        return body, 1.0
    if not math.isfinite(weight) or weight <= 0:
        raise ValueError(f"--data {text!r}: weight must be a positive number, got {tail!r}")
    return head, weight


def parse_options(
    query: str,
    allowed: Mapping[str, Callable[[str], object]],
    kind: str,
    text: str,
    repeatable: Collection[str] = (),
) -> dict[str, object]:
    """``key=value&...`` into a dict, each value cast by ``allowed[key]``; repeatable keys collect lists."""
    options: dict[str, object] = {}
    for item in filter(None, query.split("&")):
        key, eq, raw = item.partition("=")
        if not eq or key not in allowed:
            names = ", ".join(sorted(allowed))
            raise ValueError(f"--data {text!r}: unknown option {key!r} for {kind} (known: {names})")
        cast = allowed[key]
        try:
            value = cast(raw)
        except ValueError:
            name = getattr(cast, "__name__", "value")
            raise ValueError(f"--data {text!r}: option {key}={raw!r} is not a valid {name}") from None
        if key in repeatable:
            options.setdefault(key, [])
            options[key].append(value)  # type: ignore[attr-defined]
        else:
            options[key] = value
    return options


def _parse_options(kind: str, query: str, text: str) -> dict[str, object]:
    allowed = {**COMMON_OPTIONS, **KIND_OPTIONS[kind]}
    options = parse_options(query, allowed, kind, text, repeatable=("ignore",))
    context = options.get("context")
    if context is not None and not (isinstance(context, float) and context >= 1.0):
        raise ValueError(f"--data {text!r}: context must be >= 1 (crop = box x context), got {context}")
    min_area = options.get("min_area", 0.0)
    if not (isinstance(min_area, float) and 0.0 <= min_area < 1.0):
        raise ValueError(f"--data {text!r}: min_area is a fraction of the image in [0, 1), got {min_area}")
    if options.get("augment", 1) not in (0, 1):
        raise ValueError(f"--data {text!r}: augment is 0 or 1, got {options['augment']}")
    limit = options.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"--data {text!r}: limit must be a positive integer, got {limit}")
    return options


def parse_data_spec(text: str, check_paths: bool = True) -> DataSpec:
    """Parse one ``KIND:PATH[,EXTRA][?options][:weight]`` string; raises ``ValueError`` naming the problem."""
    kind, sep, body = text.partition(":")
    if kind == "shapes" and sep:
        body, weight = split_weight(body, text) if body else (body, 1.0)
        location, _, query = body.partition("?")
        if location:
            raise ValueError(f"--data {text!r}: shapes takes no path, only options (shapes:?seed=1&size=112)")
        options = _parse_options(kind, query, text)
        return DataSpec(kind=kind, path=Path(), weight=weight, options=options, text=text)
    if not sep or not body:
        raise ValueError(f"--data {text!r}: expected KIND:PATH[:weight] with KIND one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise ValueError(f"--data {text!r}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    body, weight = split_weight(body, text)
    location, _, query = body.partition("?")
    options = _parse_options(kind, query, text)
    parts = location.split(",")
    required, optional = KIND_PATHS[kind]
    if len(parts) > (2 if optional else 1) or not parts[0]:
        usage = f"{kind}:{required}" + (f"[,{optional}]" if optional else "")
        raise ValueError(f"--data {text!r}: expected {usage}")
    path = Path(parts[0]).expanduser()
    extra = Path(parts[1]).expanduser() if len(parts) == 2 and parts[1] else None
    if check_paths:
        wants_dir = kind in ("pngdir", "labelmap")
        if not path.exists():
            raise ValueError(f"--data {text!r}: {required} {str(path)!r} does not exist")
        if wants_dir and not path.is_dir():
            raise ValueError(f"--data {text!r}: {required} {str(path)!r} is not a folder")
        if not wants_dir and not path.is_file():
            raise ValueError(f"--data {text!r}: {required} {str(path)!r} is not a file")
        if extra is not None and not extra.exists():
            raise ValueError(f"--data {text!r}: {optional} {str(extra)!r} does not exist")
    return DataSpec(kind=kind, path=path, extra=extra, weight=weight, options=options, text=text)
