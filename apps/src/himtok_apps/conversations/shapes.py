"""``shapes:``: referring conversations about procedural scenes (``himtok_apps.data.shapes``), made on the fly.

Sample ``i`` is scene ``i`` of the set's seed plus a question drawn from a second stream of the same
``(seed, i)``: with probability ``absent`` an existence question about a name that matches nothing (answer
"No", no mask), otherwise a task by weight (``segment``, ``exists`` with the object present,
``segment_then_box``, ...) about an expression chosen by form weight among those that name exactly one shape.
The held-out split (``split=eval``, or ``held_out_shapes``) draws scenes from seeds ``HELD_OUT_SEED + seed``,
which training specs cannot use, so evaluation scenes are never trained on.

``meta`` of every sample: ``task``, ``expression`` (``expressions`` for multi-target), ``form``, ``absent``,
``target`` (index into ``shapes``; None when absent), ``box`` (x1, y1, x2, y2 exclusive, or None),
``shapes`` (the scene's shape names), ``split``, ``scene_seed`` and ``index``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from himtok_prompt_templates import Sample, Target
from PIL import Image

from himtok_apps.conversations.render import (
    MASK,
    box_of,
    build_sample,
    check_tasks,
    draw_task,
    interior_point,
    phrasing_seed,
)
from himtok_apps.conversations.sample import ConversationSample, SampleError
from himtok_apps.conversations.source import ConversationSource
from himtok_apps.conversations.spec import (
    FORM_DEFAULTS,
    HELD_OUT_SEED,
    TASK_DEFAULTS,
    ConversationSpec,
    parse_conversation_spec,
)
from himtok_apps.data.shapes import Reference, Scene, SceneConfig, absent_references, make_scene, references

DEFAULT_ABSENT = 0.15
DEFAULT_COUNT = 1_000_000_000

_Built = tuple[str, Sample, list[np.ndarray], dict[str, object]]


class _Question:
    """One question's view of a scene: its references, weights and random stream."""

    def __init__(self, scene: Scene, rng: np.random.Generator, forms: Mapping[str, float]) -> None:
        self.scene, self.rng, self.forms = scene, rng, forms
        self.refs = references(scene)
        height, width = scene.size
        self.width, self.height = width, height

    def reference(self, target: int | None = None) -> Reference:
        """A reference (to ``target`` if given): form by weight among the forms present, then uniformly."""
        refs = [r for r in self.refs if target is None or r.target == target]
        available = sorted({r.form for r in refs}, key=list(FORM_DEFAULTS).index)
        weighted = [f for f in available if self.forms.get(f, 0.0) > 0]
        if weighted:
            probs = np.array([self.forms[f] for f in weighted])
            form = weighted[int(self.rng.choice(len(weighted), p=probs / probs.sum()))]
            refs = [r for r in refs if r.form == form]
        return refs[int(self.rng.integers(len(refs)))]

    def mask(self, target: int) -> np.ndarray:
        return self.scene.shapes[target].mask


def _referring(task: str) -> Callable[[_Question], _Built | None]:
    def build(q: _Question) -> _Built | None:
        ref = q.reference()
        assert ref.target is not None
        mask = q.mask(ref.target)
        box = box_of(mask)
        fields = Sample(
            expression=ref.expression, tokens=MASK, box=box, width=q.width, height=q.height, answer=True
        )
        meta = {"expression": ref.expression, "form": ref.form, "target": ref.target, "box": box}
        return task, fields, ([] if task == "box" else [mask]), meta

    return build


def _prompted(task: str) -> Callable[[_Question], _Built | None]:
    def build(q: _Question) -> _Built | None:
        target = int(q.rng.integers(len(q.scene.shapes)))
        mask = q.mask(target)
        box = box_of(mask)
        point = interior_point(mask, q.rng)
        fields = Sample(tokens=MASK, box=box, points=[point], width=q.width, height=q.height)
        name = q.scene.shapes[target].name
        meta = {"expression": f"the {name}", "form": "prompt", "target": target, "box": box, "point": point}
        return task, fields, [mask], meta

    return build


def _mask_perception(q: _Question) -> _Built | None:
    target = int(q.rng.integers(len(q.scene.shapes)))
    right = f"the {q.scene.shapes[target].name}"
    others = [f"the {s.name}" for i, s in enumerate(q.scene.shapes) if i != target]
    others += [r.expression for r in absent_references(q.scene) if r.form == "color_kind"]
    count = min(len(others), int(q.rng.integers(1, 4)))
    picked = [others[int(i)] for i in q.rng.choice(len(others), size=count, replace=False)]
    options = [right, *picked]
    options = [options[int(i)] for i in q.rng.permutation(len(options))]
    fields = Sample(tokens=MASK, options=options, answer=options.index(right))
    mask = q.mask(target)
    meta = {
        "expression": right,
        "form": "color_kind",
        "target": target,
        "box": box_of(mask),
        "options": options,
    }
    return "mask_perception", fields, [mask], meta


def _multi_target(q: _Question) -> _Built | None:
    shapes = len(q.scene.shapes)
    if shapes < 2:
        return None
    count = int(q.rng.integers(2, min(3, shapes) + 1))
    targets = [int(i) for i in q.rng.choice(shapes, size=count, replace=False)]
    refs = [q.reference(t) for t in targets]
    fields = Sample(targets=[Target(r.expression, MASK) for r in refs])
    meta = {
        "expressions": [r.expression for r in refs],
        "forms": [r.form for r in refs],
        "targets": targets,
        "box": None,
    }
    return "multi_target", fields, [q.mask(t) for t in targets], meta


BUILDERS: Mapping[str, Callable[[_Question], _Built | None]] = {
    "segment": _referring("segment"),
    "segment_then_box": _referring("segment_then_box"),
    "box": _referring("box"),
    "exists": _referring("exists"),
    "box_to_mask": _prompted("box_to_mask"),
    "points_to_mask": _prompted("points_to_mask"),
    "box_points_to_mask": _prompted("box_points_to_mask"),
    "mask_perception": _mask_perception,
    "multi_target": _multi_target,
}


class ShapesSource(ConversationSource):
    def __init__(
        self,
        *,
        seed: int = 0,
        split: str = "train",
        scene: SceneConfig | None = None,
        tasks: Mapping[str, float] | None = None,
        exprs: Mapping[str, float] | None = None,
        absent: float = DEFAULT_ABSENT,
        style: str = "official",
        count: int = DEFAULT_COUNT,
        name: str | None = None,
    ) -> None:
        if split not in ("train", "eval"):
            raise ValueError(f"split is train or eval, got {split!r}")
        if not 0 <= seed < HELD_OUT_SEED:
            raise ValueError(f"shapes seed must be in [0, {HELD_OUT_SEED}), got {seed}")
        self.split = split
        self.scene_seed = seed if split == "train" else HELD_OUT_SEED + seed
        self.scene = scene if scene is not None else SceneConfig()
        self.tasks = check_tasks(tasks or TASK_DEFAULTS["shapes"], BUILDERS, "shapes")
        self.exprs = dict(exprs) if exprs else dict(FORM_DEFAULTS)
        self.absent, self.style, self.count = absent, style, count
        self.name = name or ("shapes:" if split == "train" else "shapes:split=eval")

    @classmethod
    def from_spec(cls, spec: ConversationSpec, split: str | None = None) -> ShapesSource:
        d = SceneConfig()
        scene = SceneConfig(
            size=spec.integer("size", d.size) or d.size,
            min_shapes=spec.integer("min_shapes", d.min_shapes) or d.min_shapes,
            max_shapes=spec.integer("max_shapes", d.max_shapes) or d.max_shapes,
            min_extent=spec.number("min_extent", d.min_extent),
            max_extent=spec.number("max_extent", d.max_extent),
            colors=spec.names("colors", d.colors),
            kinds=spec.names("kinds", d.kinds),
            noise=spec.number("noise", d.noise),
        )
        return cls(
            seed=spec.seed,
            split=split or str(spec.option("split", "train")),
            scene=scene,
            tasks=spec.tasks,
            exprs=spec.weights("exprs"),
            absent=spec.number("absent", DEFAULT_ABSENT),
            style=spec.style,
            count=spec.integer("count", DEFAULT_COUNT) or DEFAULT_COUNT,
            name=spec.text if split is None else f"{spec.text} (held out)",
        )

    def __len__(self) -> int:
        return self.count

    def item_key(self, index: int) -> str:
        return f"{self.split} scene {index}"

    def sample(self, index: int) -> ConversationSample:
        scene = make_scene(self.scene_seed, index, self.scene)
        if not scene.shapes:
            raise SampleError("empty scene: no shape could be placed")
        rng = np.random.default_rng(
            [self.scene_seed, index, 1]
        )  # the question's stream, apart from the scene's
        question = _Question(scene, rng, self.exprs)
        absent = absent_references(scene, self.scene)
        built: _Built | None = None
        if absent and rng.random() < self.absent:
            ref = absent[int(rng.integers(len(absent)))]
            fields = Sample(expression=ref.expression, answer=False)
            meta: dict[str, object] = {
                "expression": ref.expression,
                "form": ref.form,
                "target": None,
                "box": None,
            }
            built = "exists", fields, [], meta
        else:
            for task in draw_task(rng, self.tasks):
                built = BUILDERS[task](question)
                if built is not None:
                    break
        if built is None:
            raise SampleError("no task: no enabled task fits this scene")
        task, fields, masks, details = built
        info = {
            **details,
            "absent": task == "exists" and not masks,
            "shapes": [s.name for s in scene.shapes],
            "split": self.split,
            "scene_seed": self.scene_seed,
            "index": index,
        }
        return build_sample(
            task,
            fields,
            masks,
            image=Image.fromarray(scene.image),
            source=self.name,
            key=self.item_key(index),
            seed=phrasing_seed(rng),
            style=self.style,
            meta=info,
        )


def held_out_shapes(n: int, spec: str = "shapes:", *, seed: int | None = None) -> list[ConversationSample]:
    """``n`` held-out samples for the training spec ``spec`` (same options, evaluation scenes), in order.

    ``seed`` overrides the spec's seed; the scenes come from ``HELD_OUT_SEED + seed``, never from training.
    """
    parsed = parse_conversation_spec(spec)
    if parsed.kind != "shapes":
        raise ValueError(f"held_out_shapes needs a shapes: spec, got {spec!r}")
    if seed is not None:
        parsed = ConversationSpec(
            parsed.kind, None, None, parsed.weight, {**parsed.options, "seed": seed}, spec
        )
    source = ShapesSource.from_spec(parsed, split="eval")
    return [source.sample(i) for i in range(n)]
