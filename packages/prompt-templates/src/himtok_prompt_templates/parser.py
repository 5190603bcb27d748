"""``parse_response``: read mask spans, boxes, points, refs and yes/no answers out of any text, never raising.

One linear pass: a single regex (no nested quantifiers; possessive digit runs) finds the structural tokens and a
small state machine pairs them up. Whatever does not pair up is reported as a ``Problem``:

``unterminated_mask``  a span with no ``<|mt_end|>`` (cut off by the end of the text, by text, or by a tag)
``invalid_mask_token`` ``<|mt_N|>`` with N outside the codebook or written with leading zeros
``wrong_length``       a span whose token count differs from ``expected_length``
``empty_mask``         ``<|mt_start|><|mt_end|>`` with nothing in between
``stray_mask_tokens``  mask tokens outside any span;  ``stray_mask_end``: ``<|mt_end|>`` with no span open
``unterminated_ref`` / ``stray_ref_end``, ``unterminated_box`` / ``stray_box_end``,
``unterminated_point`` / ``stray_point_end``  tags that were never closed or never opened
``malformed_box`` / ``malformed_point``  content that is not 4 (or 2) numbers per box (point)
``fixed_box`` / ``fixed_point``  values that had to be clamped to 0..999, rounded, or (boxes) reordered
``not_text``           the input was not a string
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from himtok_prompt_templates.grid import GRID_MAX
from himtok_prompt_templates.response import (
    MaskSpan,
    ParsedBox,
    ParsedPoint,
    ParsedRef,
    ParsedResponse,
    Problem,
)
from himtok_prompt_templates.tokens import CODEBOOK_SIZE, NUM_MASK_TOKENS

# A run of mask tokens (whitespace between them allowed) is one match: the run cannot start with whitespace and
# each repetition starts with "<", so the possessive groups never backtrack.
_LEXER = re.compile(
    r"(?P<run><\|mt_\d++\|>(?:\s*+<\|mt_\d++\|>)*+)"
    r"|<\|mt_(?:(?P<start>start)|(?P<end>end))\|>"
    r"|<(?P<close>/?)(?P<tag>ref|box|point)>"
)
_RUN_DIGITS = re.compile(r"\d++")
_NUMBER = re.compile(r"([-+]?)(\d++)(?:\.\d++)?")
_COORD_PUNCTUATION = frozenset("[](), \t\r\n")
# A yes/no answer opens a sentence: at the very start, or after . ! ? ; : or a newline (then spaces, quotes, *).
_LEADING_ANSWER = re.compile(r"[ \t\r\n\"'*]*+(yes|no)\b", re.IGNORECASE)
_SENTENCE_ANSWER = re.compile(r"(?<=[.!?;:\n])[ \t\r\"'*]*+(yes|no)\b", re.IGNORECASE)
_MAX_ID_DIGITS = 12  # longer digit strings are out of range whatever the codebook; shortened in reports


@dataclass
class _OpenSpan:
    start: int
    end: int
    tokens: list[int] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


@dataclass
class _OpenTag:
    kind: str  # "ref", "box" or "point"
    start: int
    content_start: int


class _Parser:
    def __init__(self, text: str, expected_length: int | None, codebook_size: int) -> None:
        self.text = text
        self.expected_length = expected_length
        self.codebook_size = codebook_size
        self.masks: list[MaskSpan] = []
        self.boxes: list[ParsedBox] = []
        self.points: list[ParsedPoint] = []
        self.refs: list[ParsedRef] = []
        self.answers: list[bool] = []
        self.kept_text: list[str] = []
        self.problems: list[Problem] = []
        self.span: _OpenSpan | None = None
        self.tag: _OpenTag | None = None
        self.stray: tuple[int, int] | None = None  # (count, offset) of a run of mask tokens outside any span

    def run(self) -> ParsedResponse:
        position = 0
        for match in _LEXER.finditer(self.text):
            self._gap(position, match.start())
            self._token(match)
            position = match.end()
        self._gap(position, len(self.text))
        self._interrupt(len(self.text), "the end of the text")
        return ParsedResponse(
            masks=tuple(self.masks),
            boxes=tuple(self.boxes),
            points=tuple(self.points),
            refs=tuple(self.refs),
            answers=tuple(self.answers),
            text="".join(self.kept_text),
            problems=tuple(self.problems),
        )

    def _problem(self, kind: str, message: str, offset: int) -> None:
        self.problems.append(Problem(kind, message, offset))

    # --- text between structural tokens -------------------------------------------------------------------
    def _gap(self, start: int, end: int) -> None:
        if start == end or self.tag is not None:
            return  # tag content is sliced out when the tag closes
        segment = self.text[start:end]
        blank = not segment.strip()
        if blank and (self.span is not None or self.stray is not None):
            return  # whitespace between mask tokens
        self._close_span(start, "other text")
        self._flush_stray()
        self.kept_text.append(segment)
        self._find_answers(segment, at_start=start == 0)

    def _find_answers(self, segment: str, at_start: bool) -> None:
        if at_start:
            leading = _LEADING_ANSWER.match(segment)
            if leading:
                self.answers.append(leading.group(1).lower() == "yes")
        for match in _SENTENCE_ANSWER.finditer(segment):
            self.answers.append(match.group(1).lower() == "yes")

    # --- structural tokens ----------------------------------------------------------------------------------
    def _token(self, match: re.Match[str]) -> None:
        offset = match.start()
        if match.group("run") is not None:
            self._mask_tokens(match)
        elif match.group("start") is not None:
            self._interrupt(offset, "<|mt_start|>")
            self.span = _OpenSpan(start=offset, end=match.end())
        elif match.group("end") is not None:
            if self.span is not None:
                self.span.end = match.end()
                self._finish_span(complete=True)
            else:
                self._interrupt(offset, "<|mt_end|>")
                self._problem(
                    "stray_mask_end", f"<|mt_end|> at {offset} without an open <|mt_start|>", offset
                )
        else:
            self._tag(match)

    def _mask_tokens(self, match: re.Match[str]) -> None:
        ids = _RUN_DIGITS.findall(match.group("run"))
        if self.span is None:
            self._close_tag(match.start(), "a mask token")
            count, offset = self.stray if self.stray is not None else (0, match.start())
            self.stray = (count + len(ids), offset)
            return
        self.span.end = match.end()
        for digits in ids:
            canonical = digits == "0" or digits[0] != "0"
            if canonical and len(digits) <= _MAX_ID_DIGITS and int(digits) < self.codebook_size:
                self.span.tokens.append(int(digits))
            else:
                shown = digits if len(digits) <= _MAX_ID_DIGITS else digits[:_MAX_ID_DIGITS] + "..."
                self.span.invalid.append(shown)

    def _tag(self, match: re.Match[str]) -> None:
        kind, closing, offset = match.group("tag"), match.group("close") == "/", match.start()
        if closing and self.tag is not None and self.tag.kind == kind:
            tag, self.tag = self.tag, None
            content = self.text[tag.content_start : offset]
            if kind == "ref":
                self.refs.append(ParsedRef(content, True, tag.start, match.end()))
                self.kept_text.append(content)
            else:
                self._coordinates(kind, content, tag.start, match.end())
            return
        self._interrupt(offset, match.group(0))
        if closing:
            self._problem(f"stray_{kind}_end", f"</{kind}> at {offset} without an open <{kind}>", offset)
        else:
            self.tag = _OpenTag(kind, offset, match.end())

    # --- closing what is open -----------------------------------------------------------------------------
    def _interrupt(self, offset: int, by: str) -> None:
        self._close_span(offset, by)
        self._close_tag(offset, by)
        self._flush_stray()

    def _close_span(self, offset: int, by: str) -> None:
        if self.span is not None:
            self._finish_span(complete=False, cut_by=by)

    def _finish_span(self, complete: bool, cut_by: str = "") -> None:
        span, self.span = self.span, None
        assert span is not None
        length = len(span.tokens) + len(span.invalid)
        mask = MaskSpan(
            tuple(span.tokens),
            tuple(span.invalid),
            length,
            complete,
            self.expected_length,
            span.start,
            span.end,
        )
        self.masks.append(mask)
        at = span.start
        if not complete:
            self._problem("unterminated_mask", f"mask span at {at} has no <|mt_end|> before {cut_by}", at)
        if mask.invalid_ids:
            shown = ", ".join(mask.invalid_ids[:3])
            self._problem(
                "invalid_mask_token",
                f"mask span at {at} has {len(mask.invalid_ids)} ids outside [0, {self.codebook_size}): {shown}",
                at,
            )
        if mask.wrong_length:
            self._problem(
                "wrong_length", f"mask span at {at} has {length} tokens, expected {self.expected_length}", at
            )
        elif complete and length == 0:
            self._problem("empty_mask", f"mask span at {at} is empty", at)

    def _close_tag(self, offset: int, by: str) -> None:
        if self.tag is None:
            return
        tag, self.tag = self.tag, None
        self._problem(
            f"unterminated_{tag.kind}", f"<{tag.kind}> at {tag.start} is not closed before {by}", tag.start
        )
        if tag.kind == "ref":
            content = self.text[tag.content_start : offset]
            self.refs.append(ParsedRef(content, False, tag.start, offset))
            self.kept_text.append(content)

    def _flush_stray(self) -> None:
        if self.stray is not None:
            count, offset = self.stray
            self.stray = None
            self._problem(
                "stray_mask_tokens",
                f"{count} mask tokens at {offset} outside <|mt_start|>...<|mt_end|>",
                offset,
            )

    # --- box and point content ----------------------------------------------------------------------------
    def _coordinates(self, kind: str, content: str, start: int, end: int) -> None:
        per_item = 4 if kind == "box" else 2
        numbers = list(_NUMBER.finditer(content))
        leftover = set(_NUMBER.sub("", content)) - _COORD_PUNCTUATION
        if leftover or not numbers or len(numbers) % per_item:
            reason = (
                "non-numeric text" if leftover else f"{len(numbers)} numbers, need a multiple of {per_item}"
            )
            self._problem(f"malformed_{kind}", f"<{kind}> at {start} has {reason}", start)
            return
        values = [_grid_value(m.group(1), m.group(2), m.group(0)) for m in numbers]
        for i in range(0, len(values), per_item):
            group = values[i : i + per_item]
            grid = [g for g, _, _ in group]
            clamped = any(c for _, c, _ in group)
            rounded = any(r for _, _, r in group)
            if kind == "box":
                x1, y1, x2, y2 = grid
                swapped = x1 > x2 or y1 > y2
                box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
                self.boxes.append(ParsedBox(box, clamped, rounded, swapped, start, end))
                fixed = clamped or rounded or swapped
            else:
                self.points.append(ParsedPoint((grid[0], grid[1]), clamped, rounded, start, end))
                fixed = clamped or rounded
            if fixed:
                self._problem(
                    f"fixed_{kind}", f"<{kind}> at {start} had to be clamped, rounded or reordered", start
                )


def _grid_value(sign: str, whole: str, text: str) -> tuple[int, bool, bool]:
    """(grid value, clamped, rounded) for one number as written; huge numbers never reach float()."""
    if sign == "-" and text.strip("-0.") != "":
        return 0, True, False
    if len(whole.lstrip("0")) > 3:
        return GRID_MAX, True, False
    value = float(text)
    clamped = value > GRID_MAX
    value = min(value, float(GRID_MAX))
    grid = math.floor(value + 0.5)
    return grid, clamped, grid != value


def _check_options(expected_length: int | None, codebook_size: int) -> None:
    if expected_length is not None and (
        isinstance(expected_length, bool) or not isinstance(expected_length, int) or expected_length < 1
    ):
        raise ValueError(f"expected_length must be None or a positive int, got {expected_length!r}")
    if isinstance(codebook_size, bool) or not isinstance(codebook_size, int) or codebook_size < 1:
        raise ValueError(f"codebook_size must be a positive int, got {codebook_size!r}")


def parse_response(
    text: object, expected_length: int | None = NUM_MASK_TOKENS, codebook_size: int = CODEBOOK_SIZE
) -> ParsedResponse:
    """Parse an LMM response (or a human turn); never raises on any ``text``.

    ``expected_length`` (default 32; None disables) sets when a mask span is flagged ``wrong_length``.
    Bytes are decoded as UTF-8 with replacement; any other non-string gives an empty result with a
    ``not_text`` problem. Only bad ``expected_length`` / ``codebook_size`` arguments raise ``ValueError``.
    """
    _check_options(expected_length, codebook_size)
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        problem = Problem("not_text", f"expected a string, got {type(text).__name__}", 0)
        return ParsedResponse((), (), (), (), (), "", (problem,))
    return _Parser(text, expected_length, codebook_size).run()
