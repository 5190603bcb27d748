"""Parse conversation ``--data`` specs: ``KIND:PATH[,EXTRA][?key=value&...][:weight | *weight]``.

Kinds and their paths::

    official:META.json[,BASE_DIR]   the official meta JSON and the JSONL files it names
    refexp:FILE.jsonl[,ROOT]        referring expressions tied to COCO instances (also ``?root=ROOT``)
    coco:instances.json[,IMAGES]    conversations generated for every task family from COCO instances
    shapes:[key=value&...]          procedural scenes; no path, the options follow the colon directly

Examples: ``shapes:``, ``shapes:seed=3*2`` (weight 2), ``shapes:tasks=segment=1&absent=0:0.5``,
``coco:instances_train.json?tasks=segment=2,exists=1&min_area=0.01``, ``refexp:refcocos-24.jsonl?root=coco``.
``tasks=`` (and ``exprs=`` for shapes) take ``name=weight`` pairs joined by commas; names not listed get 0.
Everything is checked here, so a bad spec fails before any work with a one-line ``ValueError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from himtok_prompt_templates import STYLES, get_task

from himtok_apps.data.spec import parse_options, split_weight

CONVERSATION_KINDS = ("official", "refexp", "coco", "shapes")

#: Tasks each kind can generate, with their default weights (0: available, off unless asked for).
TASK_DEFAULTS: Mapping[str, Mapping[str, float]] = {
    "refexp": {"segment": 1.0, "segment_then_box": 0.0, "box": 0.0, "exists": 0.0},
    "coco": {
        "segment": 3.0,
        "exists": 2.0,
        "segment_then_box": 1.0,
        "box_to_mask": 1.0,
        "points_to_mask": 1.0,
        "box_points_to_mask": 0.5,
        "mask_perception": 1.0,
        "multi_target": 1.0,
        "box": 0.0,
    },
    "shapes": {
        "segment": 0.6,
        "exists": 0.2,
        "segment_then_box": 0.2,
        "box": 0.0,
        "box_to_mask": 0.0,
        "points_to_mask": 0.0,
        "box_points_to_mask": 0.0,
        "mask_perception": 0.0,
        "multi_target": 0.0,
    },
}
#: Expression forms of ``shapes`` and their default weights (simple names more often than comparisons).
FORM_DEFAULTS: Mapping[str, float] = {
    "color_kind": 3.0,
    "color": 2.0,
    "kind": 2.0,
    "superlative": 1.0,
    "extreme": 1.0,
    "relation": 1.0,
}
DEFAULT_STYLE = {"refexp": "varied", "coco": "varied", "shapes": "official"}
HELD_OUT_SEED = 1_000_000  # shapes seeds at or above this are reserved for the held-out split

_COMMON: dict[str, Callable[[str], object]] = {"seed": int, "style": str, "tasks": str, "limit": int}
KIND_OPTIONS: Mapping[str, Mapping[str, Callable[[str], object]]] = {
    "official": {"limit": int},
    "refexp": {**_COMMON, "root": str},
    "coco": {**_COMMON, "min_area": float, "absent": float, "variants": int},
    "shapes": {
        "seed": int,
        "style": str,
        "tasks": str,
        "exprs": str,
        "split": str,
        "size": int,
        "min_shapes": int,
        "max_shapes": int,
        "min_extent": float,
        "max_extent": float,
        "colors": str,
        "kinds": str,
        "noise": float,
        "absent": float,
        "count": int,
    },
}
KIND_PATHS = {
    "official": ("META_JSON", "BASE_DIR"),
    "refexp": ("FILE_JSONL", "ROOT_DIR"),
    "coco": ("INSTANCES_JSON", "IMAGES_DIR"),
}


@dataclass(frozen=True)
class ConversationSpec:
    """One parsed conversation source. ``options`` hold cast values; ``tasks``/``exprs`` are weight dicts."""

    kind: str
    path: Path | None = None
    extra: Path | None = None
    weight: float = 1.0
    options: dict[str, object] = field(default_factory=dict)
    text: str = ""

    def option(self, name: str, default: object = None) -> object:
        return self.options.get(name, default)

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.options.get(name)
        return value if isinstance(value, int) else default

    def number(self, name: str, default: float) -> float:
        value = self.options.get(name)
        return float(value) if isinstance(value, int | float) else default

    def names(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.options.get(name)
        return tuple(str(v) for v in value) if isinstance(value, tuple) else default

    def weights(self, name: str) -> dict[str, float] | None:
        value = self.options.get(name)
        return dict(value) if isinstance(value, dict) else None

    @property
    def seed(self) -> int:
        return self.integer("seed", 0) or 0

    @property
    def style(self) -> str:
        return str(self.options.get("style", DEFAULT_STYLE.get(self.kind, "varied")))

    @property
    def tasks(self) -> dict[str, float]:
        """Task weights: the kind's defaults, replaced wholesale by ``tasks=`` when given."""
        given = self.weights("tasks")
        return given if given is not None else dict(TASK_DEFAULTS.get(self.kind, {}))


def parse_weights(
    raw: str, known: Mapping[str, float], what: str, text: str, canonical: bool
) -> dict[str, float]:
    """``name=w,name=w`` into a full weight dict over ``known`` (unlisted names get 0); one positive needed."""
    weights = dict.fromkeys(known, 0.0)
    for item in filter(None, raw.split(",")):
        name, eq, value = item.partition("=")
        if canonical:
            with contextlib.suppress(ValueError):  # an unknown name is reported below
                name = get_task(name).name
        if name not in known:
            raise ValueError(f"--data {text!r}: unknown {what} {name!r} (known: {', '.join(known)})")
        try:
            weight = float(value) if eq else 1.0
        except ValueError:
            raise ValueError(f"--data {text!r}: {what} weight {item!r} is not a number") from None
        if not weight >= 0 or weight == float("inf"):
            raise ValueError(f"--data {text!r}: {what} weight must be finite and >= 0, got {item!r}")
        weights[name] = weight
    if not any(w > 0 for w in weights.values()):
        raise ValueError(f"--data {text!r}: {what}s need at least one positive weight, got {raw!r}")
    return weights


def _check_range(options: dict[str, object], name: str, low: float, high: float, text: str) -> None:
    value = options.get(name)
    if isinstance(value, int | float) and not low <= value <= high:
        raise ValueError(f"--data {text!r}: {name} must be in [{low}, {high}], got {value}")


def _validate(kind: str, options: dict[str, object], text: str) -> None:
    style = options.get("style")
    if style is not None and style not in STYLES:
        raise ValueError(f"--data {text!r}: style must be one of {', '.join(STYLES)}, got {style!r}")
    tasks, exprs = options.get("tasks"), options.get("exprs")
    if isinstance(tasks, str):
        options["tasks"] = parse_weights(tasks, TASK_DEFAULTS[kind], "task", text, canonical=True)
    if isinstance(exprs, str):
        options["exprs"] = parse_weights(exprs, FORM_DEFAULTS, "expression form", text, canonical=False)
    for name in ("colors", "kinds"):
        if isinstance(options.get(name), str):
            options[name] = tuple(filter(None, str(options[name]).split(",")))
    split = options.get("split")
    if split is not None and split not in ("train", "eval", "val"):
        raise ValueError(f"--data {text!r}: split is train or eval (alias val), got {split!r}")
    if split == "val":
        options["split"] = "eval"
    _check_range(options, "seed", 0, HELD_OUT_SEED - 1, text)
    _check_range(options, "limit", 1, float("inf"), text)
    _check_range(options, "variants", 1, 10_000, text)
    _check_range(options, "count", 1, 2**62, text)
    _check_range(options, "absent", 0.0, 1.0, text)
    _check_range(options, "min_area", 0.0, 0.999, text)


def parse_conversation_spec(text: str, check_paths: bool = True) -> ConversationSpec:
    """Parse one conversation ``--data`` string; raises a one-line ``ValueError`` naming the problem."""
    kind, sep, body = text.partition(":")
    if kind not in CONVERSATION_KINDS:
        raise ValueError(f"--data {text!r}: unknown kind {kind!r} (known: {', '.join(CONVERSATION_KINDS)})")
    body, weight = split_weight(body, text)
    if kind == "shapes":
        options = parse_options(body.removeprefix("?"), KIND_OPTIONS[kind], kind, text)
        _validate(kind, options, text)
        return ConversationSpec(kind=kind, weight=weight, options=options, text=text)
    location, _, query = body.partition("?")
    required, optional = KIND_PATHS[kind]
    parts = location.split(",")
    if not sep or not parts[0] or len(parts) > 2:
        raise ValueError(f"--data {text!r}: expected {kind}:{required}[,{optional}][?options][:weight]")
    options = parse_options(query, KIND_OPTIONS[kind], kind, text)
    _validate(kind, options, text)
    path = Path(parts[0]).expanduser()
    extra = Path(parts[1]).expanduser() if len(parts) == 2 and parts[1] else None
    if check_paths:
        if not path.is_file():
            raise ValueError(f"--data {text!r}: {required} {str(path)!r} is not a file")
        root = options.get("root")
        for folder, name in ((extra, optional), (Path(str(root)) if root else None, "root")):
            if folder is not None and not folder.is_dir():
                raise ValueError(f"--data {text!r}: {name} {str(folder)!r} is not a folder")
    return ConversationSpec(kind=kind, path=path, extra=extra, weight=weight, options=options, text=text)
