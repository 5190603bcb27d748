"""Template families: named groups of phrasings, each part checked for the exact slots it declares."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from himtok_prompt_templates import phrasings as p


def slots_of(phrasing: str) -> frozenset[str]:
    """The named ``str.format`` fields of a phrasing."""
    return frozenset(field for _, field, _, _ in string.Formatter().parse(phrasing) if field is not None)


@dataclass(frozen=True)
class PhrasingSet:
    """Interchangeable phrasings that all use exactly ``slots``; index 0 is the canonical one."""

    slots: frozenset[str]
    phrasings: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.phrasings:
            raise ValueError("a phrasing set needs at least one phrasing")
        for phrasing in self.phrasings:
            if slots_of(phrasing) != self.slots:
                raise ValueError(
                    f"phrasing {phrasing!r} has slots {sorted(slots_of(phrasing))}, expected {sorted(self.slots)}"
                )

    def render(self, index: int, values: Mapping[str, object]) -> str:
        missing = self.slots - values.keys()
        if missing:
            raise ValueError(f"missing slot values: {sorted(missing)}")
        return self.phrasings[index].format(**{k: values[k] for k in self.slots})


def _set(slots: str, phrasings: tuple[str, ...]) -> PhrasingSet:
    return PhrasingSet(frozenset(slots.split()), phrasings)


@dataclass(frozen=True)
class TemplateFamily:
    """A task's phrasings: ``parts`` maps a part name ("instruction", "response", ...) to its phrasing set."""

    name: str
    description: str
    parts: Mapping[str, PhrasingSet]

    def part(self, name: str) -> PhrasingSet:
        try:
            return self.parts[name]
        except KeyError:
            raise ValueError(
                f"family {self.name!r} has no part {name!r}; parts: {sorted(self.parts)}"
            ) from None


def _family(name: str, description: str, **parts: PhrasingSet) -> TemplateFamily:
    return TemplateFamily(name, description, MappingProxyType(parts))


_MASK_RESPONSE = _set("mask", p.MASK_RESPONSES)

_FAMILY_LIST = (
    _family(
        "segment",
        "Referring segmentation: an expression in, one mask out.",
        instruction=_set("ref", p.SEGMENT_INSTRUCTIONS),
        response=_MASK_RESPONSE,
    ),
    _family(
        "segment_then_box",
        "Visual chain of thought for REC: the mask first, then the box derived from it.",
        instruction=_set("ref", p.SEGMENT_THEN_BOX_INSTRUCTIONS),
        response=_set("mask box", p.SEGMENT_THEN_BOX_RESPONSES),
    ),
    _family(
        "box",
        "Referring expression comprehension: an expression in, one box out.",
        instruction=_set("ref", p.BOX_INSTRUCTIONS),
        response=_set("box", p.BOX_RESPONSES),
    ),
    _family(
        "box_to_mask",
        "A box prompt in, the mask of the object inside it out.",
        instruction=_set("box", p.BOX_TO_MASK_INSTRUCTIONS),
        response=_MASK_RESPONSE,
    ),
    _family(
        "box_points_to_mask",
        "A box and one or more points in, the mask out.",
        instruction=_set("box points", p.BOX_POINTS_TO_MASK_INSTRUCTIONS),
        response=_MASK_RESPONSE,
    ),
    _family(
        "points_to_mask",
        "One or more points in, the mask of the object under them out.",
        instruction=_set("points", p.POINTS_TO_MASK_INSTRUCTIONS),
        response=_MASK_RESPONSE,
    ),
    _family(
        "segment_n_tokens",
        "Referring segmentation with a fixed number of mask tokens (1..32) in the answer.",
        instruction=_set("ref n_tokens", p.SEGMENT_N_TOKENS_INSTRUCTIONS),
        response=_MASK_RESPONSE,
    ),
    _family(
        "exists",
        "Existence check (generalized RES, open-vocabulary): Yes and a mask, or No.",
        instruction=_set("ref", p.EXISTS_INSTRUCTIONS),
        response=_set("answer mask", p.EXISTS_POSITIVE_RESPONSES),
        negative_response=_set("answer ref", p.EXISTS_NEGATIVE_RESPONSES),
    ),
    _family(
        "reasoning",
        "Reasoning segmentation: a question in, the answer object in text, then its mask.",
        instruction=_set("question", p.REASONING_INSTRUCTIONS),
        response=_set("ref mask", p.REASONING_RESPONSES),
    ),
    _family(
        "mask_perception",
        "Mask to text: a mask and lettered options in, the matching option out.",
        instruction=_set("mask options", p.MASK_PERCEPTION_INSTRUCTIONS),
        response=_set("label ref", p.MASK_PERCEPTION_RESPONSES),
    ),
    _family(
        "multi_target",
        "Several expressions in, one mask per expression out, in order.",
        instruction=_set("refs", p.MULTI_TARGET_INSTRUCTIONS),
        response=_set("items", p.MULTI_TARGET_RESPONSES),
        item=_set("ref mask", p.MULTI_TARGET_ITEMS),
    ),
)

FAMILIES: Mapping[str, TemplateFamily] = MappingProxyType({f.name: f for f in _FAMILY_LIST})
