"""Boxes out of REC answers, in pixels.

* standard: the first ``<box>[x1, y1, x2, y2]</box>`` that himtok-prompt-templates' ``parse_response`` finds;
  without one, the first bracketed ``[a, b, c, d]`` of four numbers (answers of models that write no tags).
  Values are on a ``grid`` (999 for HiMTok, 1000 for InternVL) and map to ``v / grid * W`` (``* H``).
* himtok-official (``eval/evaluate_grounding.py``): the first match of ``\\[*\\[(.*?),(.*?),(.*?),(.*?)\\]\\]*``;
  when the four values sum to at least 4 they are divided by 999, otherwise taken as already normalised; then
  scaled by (W, H).

No box, or values that are not numbers: ``None``, scored as the box (0, 0, 0, 0), a miss.
"""

from __future__ import annotations

import re

from himtok_prompt_templates import parse_response

Box = tuple[float, float, float, float]

_OFFICIAL = re.compile(r"\[*\[(.*?),(.*?),(.*?),(.*?)\]\]*")
_NUMBER = r"\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*"
_BRACKETED = re.compile(r"\[" + ",".join([_NUMBER] * 4) + r"\]")
OFFICIAL_GRID = 999


def parse_box_standard(answer: str, width: float, height: float, grid: int = 999) -> Box | None:
    parsed = parse_response(answer, expected_length=None)
    if parsed.boxes:
        values: list[float] = [float(v) for v in parsed.boxes[0].grid]
    else:
        match = _BRACKETED.search(answer)
        if match is None:
            return None
        values = [float(v) for v in match.groups()]
    x1, y1, x2, y2 = values
    return (x1 / grid * width, y1 / grid * height, x2 / grid * width, y2 / grid * height)


def parse_box_official(answer: str, width: float, height: float) -> Box | None:
    match = _OFFICIAL.search(answer)
    if match is None:
        return None
    try:
        values = [float(v) for v in match.groups()]
    except ValueError:
        return None
    if sum(values) >= 4:
        values = [v / OFFICIAL_GRID for v in values]
    x1, y1, x2, y2 = values
    return (x1 * width, y1 * height, x2 * width, y2 * height)


def xywh_to_xyxy(box: tuple[float, float, float, float]) -> Box:
    """COCO ``[x, y, w, h]`` -> ``(x1, y1, x2, y2)``, with no -1 (MDETR)."""
    x, y, w, h = box
    return (x, y, x + w, y + h)
