"""Tasks turn a sample into a two-turn conversation in the official JSONL shape.

``build_conversation("segment", {"expression": "road", "tokens": codes}, seed=3)`` returns
``[{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": "..."}]``. The phrasings are drawn
from the task's family with a generator seeded by (task name, seed), so the same inputs always give the same
conversation; ``style="official"`` always takes the canonical phrasing (the official one where it exists).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from himtok_prompt_templates.families import FAMILIES, TemplateFamily
from himtok_prompt_templates.grid import format_box, format_points
from himtok_prompt_templates.sample import Sample, as_sample, check_plain_text
from himtok_prompt_templates.tokens import (
    IMAGE_TOKEN,
    NUM_MASK_TOKENS,
    REF_END,
    REF_START,
    format_mask_tokens,
)

Conversation = list[dict[str, str]]
STYLES = ("varied", "official")
_OPTION_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class _Chooser:
    """Picks phrasing indices: always 0 for the official style, else from the seeded generator."""

    def __init__(self, family: TemplateFamily, style: str, rng: random.Random) -> None:
        self.family, self.style, self.rng = family, style, rng

    def index(self, part: str) -> int:
        count = len(self.family.part(part).phrasings)
        return 0 if self.style == "official" else self.rng.randrange(count)

    def render(self, part: str, values: Mapping[str, object], index: int | None = None) -> str:
        chosen = self.index(part) if index is None else index
        return self.family.part(part).render(chosen, values)


def _require(sample: Sample, field: str) -> object:
    value = getattr(sample, field)
    if value is None:
        raise ValueError(f"this task needs sample.{field}, which is missing")
    return value


def _ref(text: object, field: str) -> str:
    return f"{REF_START}{check_plain_text(text, field)}{REF_END}"


def _tokens(sample: Sample) -> list[int]:
    tokens = _require(sample, "tokens")
    if isinstance(tokens, str | bytes):
        raise ValueError("sample.tokens must be a sequence of ints, got a string")
    try:
        items = list(tokens)  # type: ignore[call-overload]
    except TypeError as err:
        raise ValueError(f"sample.tokens must be a sequence of ints, got {type(tokens).__name__}") from err
    if sample.n_tokens is not None:
        n = sample.n_tokens
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(items):
            raise ValueError(
                f"sample.n_tokens must be an int in [1, {len(items)}] (the tokens given), got {n!r}"
            )
        items = items[:n]
    return items


def _mask(sample: Sample) -> str:
    return format_mask_tokens(_tokens(sample))


def _size(sample: Sample) -> tuple[float, float]:
    return _require(sample, "width"), _require(sample, "height")  # type: ignore[return-value]


def _box(sample: Sample) -> str:
    return format_box(_require(sample, "box"), *_size(sample))  # type: ignore[arg-type]


def _points(sample: Sample) -> str:
    return format_points(_require(sample, "points"), *_size(sample))  # type: ignore[arg-type]


def _join_refs(refs: Sequence[str]) -> str:
    return refs[0] if len(refs) == 1 else ", ".join(refs[:-1]) + " and " + refs[-1]


def _segment(s: Sample, c: _Chooser) -> tuple[str, str]:
    return c.render("instruction", {"ref": _ref(s.expression, "expression")}), c.render(
        "response", {"mask": _mask(s)}
    )


def _segment_then_box(s: Sample, c: _Chooser) -> tuple[str, str]:
    instruction = c.render("instruction", {"ref": _ref(s.expression, "expression")})
    return instruction, c.render("response", {"mask": _mask(s), "box": _box(s)})


def _box_only(s: Sample, c: _Chooser) -> tuple[str, str]:
    return c.render("instruction", {"ref": _ref(s.expression, "expression")}), c.render(
        "response", {"box": _box(s)}
    )


def _box_to_mask(s: Sample, c: _Chooser) -> tuple[str, str]:
    return c.render("instruction", {"box": _box(s)}), c.render("response", {"mask": _mask(s)})


def _box_points_to_mask(s: Sample, c: _Chooser) -> tuple[str, str]:
    instruction = c.render("instruction", {"box": _box(s), "points": _points(s)})
    return instruction, c.render("response", {"mask": _mask(s)})


def _points_to_mask(s: Sample, c: _Chooser) -> tuple[str, str]:
    return c.render("instruction", {"points": _points(s)}), c.render("response", {"mask": _mask(s)})


def _segment_n_tokens(s: Sample, c: _Chooser) -> tuple[str, str]:
    tokens = _tokens(s)
    if len(tokens) > NUM_MASK_TOKENS:
        raise ValueError(f"segment_n_tokens takes 1..{NUM_MASK_TOKENS} tokens, got {len(tokens)}")
    ref = _ref(s.expression, "expression")
    instruction = c.render("instruction", {"ref": ref, "n_tokens": len(tokens)})
    return instruction, c.render("response", {"mask": format_mask_tokens(tokens)})


def _exists(s: Sample, c: _Chooser) -> tuple[str, str]:
    if s.answer is None:
        present = s.tokens is not None
    elif isinstance(s.answer, bool):
        present = s.answer
    else:
        raise ValueError(f"exists needs sample.answer to be True, False or None, got {s.answer!r}")
    ref = _ref(s.expression, "expression")
    instruction = c.render("instruction", {"ref": ref})
    if present:
        return instruction, c.render("response", {"answer": "Yes", "mask": _mask(s)})
    return instruction, c.render("negative_response", {"answer": "No", "ref": ref})


def _reasoning(s: Sample, c: _Chooser) -> tuple[str, str]:
    instruction = c.render("instruction", {"question": check_plain_text(_require(s, "question"), "question")})
    return instruction, c.render("response", {"ref": _ref(_require(s, "answer"), "answer"), "mask": _mask(s)})


def _mask_perception(s: Sample, c: _Chooser) -> tuple[str, str]:
    options = _require(s, "options")
    if isinstance(options, str | bytes) or not isinstance(options, Sequence):
        raise ValueError("sample.options must be a list of strings")
    if not 1 <= len(options) <= len(_OPTION_LABELS):
        raise ValueError(f"sample.options must have 1..{len(_OPTION_LABELS)} entries, got {len(options)}")
    for i, option in enumerate(options):
        if "\n" in check_plain_text(option, f"options[{i}]"):
            raise ValueError(f"options[{i}] must be one line: {option!r}")
    answer = _require(s, "answer")
    if isinstance(answer, bool):
        raise ValueError(
            "mask_perception needs sample.answer to be an option index or the option text, got a bool"
        )
    if isinstance(answer, int):
        if not 0 <= answer < len(options):
            raise ValueError(f"sample.answer {answer} is not an option index in [0, {len(options)})")
        chosen = answer
    elif answer in options:
        chosen = list(options).index(answer)
    else:
        raise ValueError(f"sample.answer {answer!r} is not one of the options")
    listing = "\n".join(f"{_OPTION_LABELS[i]}. {option}" for i, option in enumerate(options))
    instruction = c.render("instruction", {"mask": _mask(s), "options": listing})
    response = c.render("response", {"label": _OPTION_LABELS[chosen], "ref": _ref(options[chosen], "answer")})
    return instruction, response


def _multi_target(s: Sample, c: _Chooser) -> tuple[str, str]:
    targets = _require(s, "targets")
    if isinstance(targets, str | bytes) or not isinstance(targets, Sequence) or not targets:
        raise ValueError("sample.targets must be a non-empty list of Target")
    refs = [_ref(t.expression, f"targets[{i}].expression") for i, t in enumerate(targets)]
    masks = [_mask(Sample(tokens=t.tokens)) for t in targets]
    instruction = c.render("instruction", {"refs": _join_refs(refs)})
    response_index = c.index("response")
    item_index = c.index("item")  # one item phrasing for all targets keeps the answer uniform
    items = " ".join(
        c.render("item", {"ref": r, "mask": m}, item_index) for r, m in zip(refs, masks, strict=True)
    )
    return instruction, c.render("response", {"items": items}, response_index)


@dataclass(frozen=True)
class Task:
    """A named task: its template family and the function that fills the family's slots from a sample."""

    name: str
    family: TemplateFamily
    fill: Callable[[Sample, _Chooser], tuple[str, str]]

    def build(
        self,
        sample: Sample | Mapping[str, object],
        seed: int = 0,
        *,
        style: str = "varied",
        image: bool = True,
    ) -> Conversation:
        """The conversation for ``sample``; the same (sample, seed, style) always gives the same result."""
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        rng = random.Random(f"{self.name}:{seed}")
        instruction, response = self.fill(as_sample(sample), _Chooser(self.family, style, rng))
        human = f"{IMAGE_TOKEN}\n{instruction}" if image else instruction
        return [{"from": "human", "value": human}, {"from": "gpt", "value": response}]


_FILLERS: dict[str, Callable[[Sample, _Chooser], tuple[str, str]]] = {
    "segment": _segment,
    "segment_then_box": _segment_then_box,
    "box": _box_only,
    "box_to_mask": _box_to_mask,
    "box_points_to_mask": _box_points_to_mask,
    "points_to_mask": _points_to_mask,
    "segment_n_tokens": _segment_n_tokens,
    "exists": _exists,
    "reasoning": _reasoning,
    "mask_perception": _mask_perception,
    "multi_target": _multi_target,
}

TASKS: Mapping[str, Task] = MappingProxyType(
    {name: Task(name, FAMILIES[name], fill) for name, fill in _FILLERS.items()}
)

TASK_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "res": "segment",
        "rec": "segment_then_box",
        "visual_cot": "segment_then_box",
        "rec_box_only": "box",
        "gres": "exists",
        "open_vocabulary": "exists",
        "reason_seg": "reasoning",
        "mask_to_text": "mask_perception",
        "multi": "multi_target",
    }
)


def get_task(name: str) -> Task:
    """The task called ``name`` (or one of its aliases in ``TASK_ALIASES``)."""
    if not isinstance(name, str):
        raise ValueError(f"task name must be a string, got {type(name).__name__}")
    canonical = TASK_ALIASES.get(name, name)
    if canonical not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {sorted(TASKS)}, aliases: {sorted(TASK_ALIASES)}")
    return TASKS[canonical]


def build_conversation(
    task_name: str,
    sample: Sample | Mapping[str, object],
    seed: int = 0,
    *,
    style: str = "varied",
    image: bool = True,
) -> Conversation:
    """Build the two-turn conversation of ``task_name`` for ``sample`` (see ``Task.build``)."""
    return get_task(task_name).build(sample, seed, style=style, image=image)
