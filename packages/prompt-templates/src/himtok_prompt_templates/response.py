"""The result of parsing a response: every piece found, in order, with flags for whatever was malformed."""

from __future__ import annotations

from dataclasses import dataclass

from himtok_prompt_templates.grid import GridBox, GridPoint, grid_to_box, grid_to_point


@dataclass(frozen=True)
class Problem:
    """One malformed piece: a short ``kind`` code, a readable message, and its character offset."""

    kind: str
    message: str
    offset: int


@dataclass(frozen=True)
class MaskSpan:
    """A run of mask tokens that began with ``<|mt_start|>``.

    ``tokens`` holds the valid ids in order; ``invalid_ids`` the digit strings of ``<|mt_N|>`` tokens that are not
    in the vocabulary (out of range or with leading zeros; long ones are shortened). ``length`` counts both.
    ``complete`` is True when ``<|mt_end|>`` closed the span; a span cut off by the end of the text, by other text
    or by another tag is ``truncated``.
    """

    tokens: tuple[int, ...]
    invalid_ids: tuple[str, ...]
    length: int
    complete: bool
    expected_length: int | None
    start: int
    end: int

    @property
    def truncated(self) -> bool:
        return not self.complete

    @property
    def out_of_range(self) -> bool:
        return bool(self.invalid_ids)

    @property
    def wrong_length(self) -> bool:
        return self.expected_length is not None and self.length != self.expected_length

    @property
    def ok(self) -> bool:
        """Closed, every id valid, and of the expected length: safe to decode as is."""
        return self.complete and not self.out_of_range and not self.wrong_length and self.length > 0


@dataclass(frozen=True)
class ParsedBox:
    """A ``<box>`` on the 0..999 grid, after clamping to the grid, rounding and ordering its corners."""

    grid: GridBox
    clamped: bool
    rounded: bool
    swapped: bool
    start: int
    end: int

    @property
    def fixed(self) -> bool:
        return self.clamped or self.rounded or self.swapped

    def to_pixels(self, width: float, height: float) -> tuple[float, float, float, float]:
        return grid_to_box(self.grid, width, height)


@dataclass(frozen=True)
class ParsedPoint:
    """A ``<point>`` on the 0..999 grid, after clamping and rounding."""

    grid: GridPoint
    clamped: bool
    rounded: bool
    start: int
    end: int

    @property
    def fixed(self) -> bool:
        return self.clamped or self.rounded

    def to_pixels(self, width: float, height: float) -> tuple[float, float]:
        return grid_to_point(self.grid, width, height)


@dataclass(frozen=True)
class ParsedRef:
    """The text inside ``<ref>...</ref>``; ``complete`` is False when ``</ref>`` never came."""

    text: str
    complete: bool
    start: int
    end: int


@dataclass(frozen=True)
class ParsedResponse:
    """Everything ``parse_response`` found.

    ``answers`` are the yes/no answers (True for yes) that open a sentence outside any tag; ``text`` is the input
    with mask spans, boxes and points removed and ``<ref>`` tags dropped (their content kept).
    """

    masks: tuple[MaskSpan, ...]
    boxes: tuple[ParsedBox, ...]
    points: tuple[ParsedPoint, ...]
    refs: tuple[ParsedRef, ...]
    answers: tuple[bool, ...]
    text: str
    problems: tuple[Problem, ...]

    @property
    def answer(self) -> bool | None:
        """The first yes/no answer, or None."""
        return self.answers[0] if self.answers else None

    @property
    def mask_tokens(self) -> tuple[int, ...] | None:
        """Valid tokens of the first mask span (what the official runner decodes), or None without one."""
        return self.masks[0].tokens if self.masks else None

    @property
    def clean(self) -> bool:
        """True when nothing at all was malformed."""
        return not self.problems
