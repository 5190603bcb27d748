"""Task -> question, with the canonical (official where one exists) phrasing of himtok-prompt-templates.

The runner's short task names map onto the template tasks; the question is the instruction turn of the
conversation the package builds (the answer turn, built from placeholder tokens, is dropped). Box and point
tasks need the image size (coordinates go on the 0..999 grid); mask2text needs the mask's codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from himtok_prompt_templates import build_conversation, placeholder_tokens

from himtok_apps.infer.requests import Request

# runner task -> himtok-prompt-templates task
TEMPLATE_TASKS: dict[str, str] = {
    "res": "segment",
    "gres": "exists",
    "reason": "reasoning",
    "rec": "segment_then_box",
    "openvocab": "exists",
    "box2mask": "box_to_mask",
    "point2mask": "points_to_mask",
    "mask2text": "mask_perception",
}
# Tasks whose answer may hold no mask: "No" for the existence questions, an option for mask2text.
MAY_ANSWER_NO = frozenset({"gres", "openvocab"})
TEXT_ANSWER = frozenset({"mask2text"})


def template_task(request: Request) -> str:
    """The himtok-prompt-templates task a request uses (box2mask with points uses the box + points one)."""
    assert request.task is not None
    if request.task == "box2mask" and request.points:
        return "box_points_to_mask"
    return TEMPLATE_TASKS[request.task]


def build_question(
    request: Request,
    width: int,
    height: int,
    encode_mask: Callable[[str], list[int]] | None = None,
) -> str:
    """The user turn for `request` on an image of `width` x `height` (no `<image>`: the model adds it).

    Raises `ValueError` when the request cannot be phrased (markup inside an expression, an unreadable mask).
    """
    if request.task is None:
        if request.prompt is None or not request.prompt.strip():
            raise ValueError("empty prompt")
        return request.prompt
    # Only the instruction is kept; the answer turn is filled with placeholders (tokens, a whole-image box).
    tokens = placeholder_tokens()
    sample: dict[str, Any] = {
        "tokens": tokens,
        "width": width,
        "height": height,
        "box": (0, 0, width, height),
    }
    task = request.task
    if task in ("res", "gres", "rec", "openvocab"):
        sample["expression"] = request.ref
    elif task == "reason":
        sample.update(question=request.ref, answer="the object")
    elif task == "box2mask":
        sample["box"] = request.box
        if request.points:
            sample["points"] = request.points
    elif task == "point2mask":
        sample["points"] = request.points
    elif task == "mask2text":
        if encode_mask is None or request.mask is None:
            raise ValueError("mask2text needs a mask and a mask tokenizer to encode it")
        sample.update(tokens=encode_mask(request.mask), options=list(request.classes or ()), answer=0)
    else:
        raise ValueError(f"unknown task {task!r}")
    conversation = build_conversation(template_task(request), sample, style="official", image=False)
    return conversation[0]["value"]
