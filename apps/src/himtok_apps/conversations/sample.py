"""One training conversation: an image, its turns, and one mask per mask placeholder, checked together."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from himtok_prompt_templates import IMAGE_TOKEN, MT_END, MT_START, format_mask_tokens, placeholder_tokens
from PIL import Image

from himtok_apps.data.errors import MaskReadError

#: The exact mask placeholder of the official data: start, 32 x ``<|mt_0|>``, end. The trainer replaces the 32
#: ``<|mt_0|>`` by the codes the frozen mask encoder computes online from the matching mask.
PLACEHOLDER = format_mask_tokens(placeholder_tokens())
ROLES = ("human", "gpt")

# A complete mask span of any codes; used to turn pre-converted official answers back into placeholders.
_MASK_SPAN = re.compile(re.escape(MT_START) + r"(?:<\|mt_\d+\|>)+" + re.escape(MT_END))


class SampleError(MaskReadError):
    """A record cannot become a valid sample; the message reads ``"category: detail"``. Skipped and counted."""


@dataclass(eq=False)
class ConversationSample:
    """An image, its conversation, and the masks of its mask placeholders.

    ``turns`` alternate ``{"from": "human" | "gpt", "value": str}``; the first human turn holds ``<image>``.
    ``masks[i]`` is the bool mask (image height x width) of the i-th placeholder in reading order across all
    turns (human turns included: mask-to-text prompts carry their mask there, unsupervised). ``source`` is
    the spec the sample came from, ``key`` a stable id of the record, ``meta`` what reports and evaluation need
    (task, expressions, absent, box, ...).
    """

    image: Image.Image
    turns: list[dict[str, str]]
    masks: list[np.ndarray]
    source: str
    key: str
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image, which every mask shares."""
        return self.image.height, self.image.width

    @property
    def placeholders(self) -> int:
        return sum(count_placeholders(turn["value"]) for turn in self.turns)

    @property
    def answer_masks(self) -> int:
        """How many masks the gpt turns hold (the supervised ones)."""
        return sum(count_placeholders(t["value"]) for t in self.turns if t["from"] == "gpt")


def count_placeholders(text: str) -> int:
    return text.count(PLACEHOLDER)


def normalize_mask_spans(text: str) -> str:
    """Every complete 32-token mask span (codes pre-computed or not) as the placeholder; other spans kept."""

    def replace(match: re.Match[str]) -> str:
        inner = match.group(0)[len(MT_START) : -len(MT_END)]
        return PLACEHOLDER if inner.count("<|mt_") == len(placeholder_tokens()) else match.group(0)

    return _MASK_SPAN.sub(replace, text)


def _check_turns(turns: object) -> None:
    if not isinstance(turns, list) or not turns:
        raise SampleError("bad conversation: conversations must be a non-empty list")
    for number, turn in enumerate(turns):
        if (
            not isinstance(turn, dict)
            or turn.get("from") not in ROLES
            or not isinstance(turn.get("value"), str)
        ):
            raise SampleError(f"bad conversation: turn {number} is not {{'from': human|gpt, 'value': str}}")
    if turns[0]["from"] != "human":
        raise SampleError("bad conversation: the first turn is not from human")
    if IMAGE_TOKEN not in turns[0]["value"]:
        raise SampleError(f"bad conversation: the first turn has no {IMAGE_TOKEN}")


def validate_sample(sample: ConversationSample) -> ConversationSample:
    """``sample`` itself if image, turns and masks agree; else ``SampleError`` naming the first problem."""
    if not isinstance(sample.image, Image.Image) or sample.image.mode != "RGB":
        raise SampleError("bad image: not a PIL RGB image")
    _check_turns(sample.turns)
    for number, turn in enumerate(sample.turns):
        text = turn["value"]
        starts, ends, whole = text.count(MT_START), text.count(MT_END), count_placeholders(text)
        if starts != whole or ends != whole:
            raise SampleError(
                f"malformed placeholder: turn {number} has {starts} {MT_START}, {ends} {MT_END} but {whole} "
                f"complete 32-token placeholders"
            )
    expected = sample.placeholders
    if expected != len(sample.masks):
        raise SampleError(f"mask count: {expected} placeholders but {len(sample.masks)} masks")
    height, width = sample.size
    for number, mask in enumerate(sample.masks):
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.ndim != 2:
            raise SampleError(f"bad mask: mask {number} is not a 2-D bool array")
        if mask.shape != (height, width):
            raise SampleError(
                f"mask size: mask {number} is {mask.shape[1]}x{mask.shape[0]}, the image {width}x{height}"
            )
    return sample
