"""What to segment: requests from the command line or from a JSONL file, one per (image, question).

A request that cannot be understood (malformed JSON, a missing image field, an unknown task) is still a
request: it carries its `error` and is written to `results.jsonl` like any other, so one bad line never stops
a run. Problems with the file as a whole (unreadable, duplicate ids) raise `ValueError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

TASK_NAMES = ("res", "gres", "reason", "rec", "openvocab", "box2mask", "point2mask", "mask2text")

# JSONL fields besides the task arguments; "question" is another name for "ref" (reasoning questions).
_FIELDS = {
    "id",
    "image",
    "prompt",
    "task",
    "ref",
    "question",
    "classes",
    "box",
    "point",
    "points",
    "mask",
    "gt",
}


@dataclass(frozen=True)
class Request:
    """One image and one question (a free prompt, or a task and its arguments).

    `index` is the position in the input (the order of `results.jsonl`). `classes` are openvocab's classes
    before expansion and mask2text's options; an expanded openvocab request has its class in `ref`. Boxes and
    points are in pixels of the image. `gt` is a ground-truth mask PNG at the image's size, to score the answer
    against (the union of its masks; with and without refinement). `error` marks a request that will not run.
    """

    id: str
    index: int
    image: str | None
    prompt: str | None = None
    task: str | None = None
    ref: str | None = None
    classes: tuple[str, ...] | None = None
    box: tuple[float, float, float, float] | None = None
    points: tuple[tuple[float, float], ...] | None = None
    mask: str | None = None
    gt: str | None = None
    error: str | None = None

    def describe(self) -> dict[str, Any]:
        """The request's fields for its `results.jsonl` line (only those that are set)."""
        fields: dict[str, Any] = {
            "task": self.task,
            "ref": self.ref,
            "classes": list(self.classes) if self.classes is not None else None,
            "box": list(self.box) if self.box is not None else None,
            "points": [list(p) for p in self.points] if self.points is not None else None,
            "mask": self.mask,
            "gt": self.gt,
        }
        return {k: v for k, v in fields.items() if v is not None}


# ---------------------------------------------------------------------------------------------- values
def parse_classes(value: object) -> tuple[str, ...]:
    """`"a,b"` or `["a", "b"]` -> `("a", "b")` (stripped, non-empty, no duplicates)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"classes must be 'a,b,...' or a list of strings, got {value!r}")
    names = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"classes must be non-empty strings, got {value!r}")
        names.append(item.strip())
    if not names:
        raise ValueError("classes must not be empty")
    if len(set(names)) != len(names):
        raise ValueError(f"classes are repeated: {value!r}")
    return tuple(names)


def parse_numbers(value: object, count: int, what: str) -> tuple[float, ...]:
    """`"1,2,3,4"` or `[1, 2, 3, 4]` -> floats, exactly `count` of them."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or len(items) != count:
        raise ValueError(f"{what} needs {count} numbers, got {value!r}")
    try:
        numbers = tuple(float(v) for v in items if not isinstance(v, bool))
    except (TypeError, ValueError):
        raise ValueError(f"{what} needs {count} numbers, got {value!r}") from None
    if len(numbers) != count or any(n != n or n in (float("inf"), float("-inf")) for n in numbers):
        raise ValueError(f"{what} needs {count} finite numbers, got {value!r}")
    return numbers


def parse_box(value: object) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = parse_numbers(value, 4, "a box (x1,y1,x2,y2 in pixels)")
    if not (x2 > x1 and y2 > y1 and x1 >= 0 and y1 >= 0):
        raise ValueError(f"a box needs 0 <= x1 < x2 and 0 <= y1 < y2, got {value!r}")
    return x1, y1, x2, y2


def parse_point(value: object) -> tuple[float, float]:
    x, y = parse_numbers(value, 2, "a point (x,y in pixels)")
    if x < 0 or y < 0:
        raise ValueError(f"a point needs x, y >= 0, got {value!r}")
    return x, y


def parse_points(value: object) -> tuple[tuple[float, float], ...]:
    """One point (`"x,y"`, `[x, y]`) or several (`[[x, y], ...]`, `["x,y", ...]`)."""
    if isinstance(value, list | tuple) and value and isinstance(value[0], list | tuple | str):
        return tuple(parse_point(v) for v in value)
    return (parse_point(value),)


# ---------------------------------------------------------------------------------------------- checks
def check_task_arguments(request: Request) -> Request:
    """The request, or the same request with `error` set when its task lacks an argument it needs."""
    if request.error is not None:
        return request
    problem = task_argument_problem(request)
    return replace(request, error=problem) if problem else request


# What each task reads (Request fields) and what it cannot do without.
TASK_ARGUMENTS: dict[str, frozenset[str]] = {
    "res": frozenset({"ref"}),
    "gres": frozenset({"ref"}),
    "rec": frozenset({"ref"}),
    "reason": frozenset({"ref"}),
    "openvocab": frozenset({"classes", "ref"}),
    "box2mask": frozenset({"box", "points"}),
    "point2mask": frozenset({"points"}),
    "mask2text": frozenset({"mask", "classes"}),
}
TASK_REQUIRES: dict[str, tuple[str, ...]] = {
    "res": ("ref",),
    "gres": ("ref",),
    "rec": ("ref",),
    "reason": ("ref",),
    "openvocab": ("classes",),  # or a single class in ref (an expanded request)
    "box2mask": ("box",),
    "point2mask": ("points",),
    "mask2text": ("mask", "classes"),
}


def task_argument_problem(request: Request) -> str | None:
    """Why `request` cannot run as written (no image, no question, a task argument missing), or None."""
    task = request.task
    if request.image is None:
        return "the request has no image"
    if task is None:
        if request.prompt is None or not request.prompt.strip():
            return "empty prompt"
        return None
    if request.prompt is not None:
        return "give either a prompt or a task, not both"
    if task not in TASK_NAMES:
        return f"unknown task {task!r}; tasks: {', '.join(TASK_NAMES)}"
    unused = sorted(
        f
        for f in ("ref", "classes", "box", "points", "mask")
        if getattr(request, f) is not None and f not in TASK_ARGUMENTS[task]
    )
    if unused:
        return f"task {task} does not use {', '.join(unused)}"
    if request.gt is not None and task == "mask2text":
        return "task mask2text answers with text: there is no mask to compare with gt"
    if request.gt is not None and task == "openvocab" and request.ref is None:
        return "openvocab asks one question per class: give gt on one gres request per class instead"
    required = ("ref",) if task == "openvocab" and request.ref is not None else TASK_REQUIRES[task]
    missing = [f for f in required if not getattr(request, f)]
    if missing:
        return f"task {task} needs {', '.join(missing)}"
    if isinstance(request.ref, str) and not request.ref.strip():
        return "empty ref"
    return None


def expand_openvocab(request: Request) -> list[Request]:
    """openvocab with classes a,b -> one existence question per class (`<id>:<class>`), as the paper asks."""
    if request.task != "openvocab" or request.error is not None or request.ref is not None:
        return [request]
    if not request.classes:
        return [replace(request, error="task openvocab needs classes")]
    return [replace(request, id=f"{request.id}:{name}", ref=name, classes=None) for name in request.classes]


def number(requests: Iterable[Request]) -> list[Request]:
    """Set `index` to the position in the list, then refuse duplicate ids (resume and file names need them)."""
    numbered = [replace(r, index=i) for i, r in enumerate(requests)]
    seen: dict[str, int] = {}
    for r in numbered:
        if r.id in seen:
            raise ValueError(
                f"request id {r.id!r} appears twice (requests {seen[r.id] + 1} and {r.index + 1})"
            )
        seen[r.id] = r.index
    return numbered


# ---------------------------------------------------------------------------------------------- sources
def requests_from_arguments(
    images: Sequence[str],
    *,
    prompt: str | None = None,
    task: str | None = None,
    ref: str | None = None,
    classes: Sequence[str] | None = None,
    box: tuple[float, float, float, float] | None = None,
    points: Sequence[tuple[float, float]] | None = None,
    mask: str | None = None,
) -> list[Request]:
    """One request per image, all with the same question; ids are the file stems (paths when stems repeat)."""
    stems = [Path(p).stem for p in images]
    ids = stems if len(set(stems)) == len(stems) else list(images)
    made = [
        Request(
            id=ident,
            index=0,
            image=str(path),
            prompt=prompt,
            task=task,
            ref=ref,
            classes=tuple(classes) if classes is not None else None,
            box=box,
            points=tuple(points) if points is not None else None,
            mask=mask,
        )
        for ident, path in zip(ids, images, strict=True)
    ]
    return number(r for made_one in made for r in expand_openvocab(check_task_arguments(made_one)))


def _resolve(path: str, base: Path) -> str:
    """A relative path is looked up beside the JSONL file first, then in the working directory."""
    candidate = Path(path)
    if candidate.is_absolute():
        return path
    beside = base / candidate
    return str(beside) if beside.exists() or not candidate.exists() else path


def request_from_json(line: str, line_number: int, base: Path) -> Request:
    """One JSONL line -> a request (with `error` when the line is not a valid request)."""
    fallback = f"line-{line_number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as err:
        return Request(id=fallback, index=0, image=None, error=f"line {line_number} is not JSON: {err.msg}")
    if not isinstance(data, dict):
        return Request(id=fallback, index=0, image=None, error=f"line {line_number} is not a JSON object")
    ident = data.get("id", fallback)
    if isinstance(ident, int) and not isinstance(ident, bool):
        ident = str(ident)
    if not isinstance(ident, str) or not ident:
        return Request(id=fallback, index=0, image=None, error=f"line {line_number}: id must be a string")
    base_request = Request(id=ident, index=0, image=None)
    try:
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {unknown}; fields: {sorted(_FIELDS)}")
        if "ref" in data and "question" in data:
            raise ValueError("give ref or question, not both")
        image = data.get("image")
        if not isinstance(image, str) or not image:
            raise ValueError("the request has no image (an 'image' path)")
        prompt, task = data.get("prompt"), data.get("task")
        for name, value in (("prompt", prompt), ("task", task)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
        ref = data.get("ref", data.get("question"))
        if ref is not None and not isinstance(ref, str):
            raise ValueError("ref must be a string")
        mask, gt = data.get("mask"), data.get("gt")
        if mask is not None and not isinstance(mask, str):
            raise ValueError("mask must be the path of a PNG")
        if gt is not None and (not isinstance(gt, str) or not gt):
            raise ValueError("gt must be the path of a ground-truth mask PNG")
        point_value = data.get("points", data.get("point"))
        request = Request(
            id=ident,
            index=0,
            image=_resolve(image, base),
            prompt=prompt,
            task=task,
            ref=ref,
            classes=parse_classes(data["classes"]) if data.get("classes") is not None else None,
            box=parse_box(data["box"]) if data.get("box") is not None else None,
            points=parse_points(point_value) if point_value is not None else None,
            mask=_resolve(mask, base) if mask is not None else None,
            gt=_resolve(gt, base) if gt is not None else None,
        )
    except ValueError as err:
        return replace(base_request, error=f"line {line_number}: {err}")
    return check_task_arguments(request)


def requests_from_jsonl(path: str | Path) -> list[Request]:
    """Every non-blank line of a JSONL file, in order (openvocab lines expand to one request per class)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    base = path.parent
    parsed = [
        request_from_json(line, n, base) for n, line in enumerate(text.splitlines(), start=1) if line.strip()
    ]
    if not parsed:
        raise ValueError(f"{path} holds no requests")
    return number(r for one in parsed for r in expand_openvocab(one))
