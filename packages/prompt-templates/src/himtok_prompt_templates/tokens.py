"""Special-token strings of the official HiMTok format and the mask-span formatter.

The LMM vocabulary gains ``<|mt_start|>``, ``<|mt_end|>`` and ``<|mt_0|>`` ... ``<|mt_1023|>``; a mask is written
as ``<|mt_start|><|mt_17|>...<|mt_end|>``. ``<ref>``/``</ref>`` and ``<box>``/``</box>`` already exist in the
InternVL2.5 tokenizer. ``<point>``/``</point>`` is our own addition for point prompts (plain text to the LMM).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from typing import SupportsIndex

MT_START = "<|mt_start|>"
MT_END = "<|mt_end|>"
REF_START = "<ref>"
REF_END = "</ref>"
BOX_START = "<box>"
BOX_END = "</box>"
POINT_START = "<point>"
POINT_END = "</point>"
IMAGE_TOKEN = "<image>"

CODEBOOK_SIZE = 1024
NUM_MASK_TOKENS = 32

MASK_TOKEN_PATTERN = re.compile(r"<\|mt_(\d+)\|>")
"""Matches one mask token; group 1 is its decimal index (not range-checked)."""


def _check_codebook_size(codebook_size: int) -> int:
    if isinstance(codebook_size, bool) or not isinstance(codebook_size, int) or codebook_size < 1:
        raise ValueError(f"codebook_size must be a positive int, got {codebook_size!r}")
    return codebook_size


def mask_token(k: int, codebook_size: int = CODEBOOK_SIZE) -> str:
    """The text of mask token ``k``: ``mask_token(17) == "<|mt_17|>"``."""
    index = _as_index(k, "mask token")
    if not 0 <= index < _check_codebook_size(codebook_size):
        raise ValueError(f"mask token index {index} is outside [0, {codebook_size})")
    return f"<|mt_{index}|>"


def mask_vocabulary(codebook_size: int = CODEBOOK_SIZE) -> list[str]:
    """All mask special tokens in official id order: start, end, then ``<|mt_0|>`` .. ``<|mt_{K-1}|>``."""
    size = _check_codebook_size(codebook_size)
    return [MT_START, MT_END, *(f"<|mt_{k}|>" for k in range(size))]


def placeholder_tokens(n: int = NUM_MASK_TOKENS) -> tuple[int, ...]:
    """The official data placeholder: ``n`` zeros, replaced online by the frozen encoder's codes."""
    length = _as_index(n, "placeholder length")
    if length < 1:
        raise ValueError(f"placeholder length must be at least 1, got {length}")
    return (0,) * length


def format_mask_tokens(tokens: Iterable[SupportsIndex], codebook_size: int = CODEBOOK_SIZE) -> str:
    """``<|mt_start|><|mt_a|>...<|mt_end|>`` for a non-empty sequence of ints in ``[0, codebook_size)``.

    Accepts any iterable of integer-likes (lists, tuples, numpy arrays, 1-D integer tensors).
    """
    size = _check_codebook_size(codebook_size)
    if isinstance(tokens, str | bytes):
        raise ValueError("tokens must be a sequence of ints, got a string")
    try:
        items = list(tokens)
    except TypeError as err:
        raise ValueError(f"tokens must be an iterable of ints, got {type(tokens).__name__}") from err
    if not items:
        raise ValueError("tokens must contain at least one mask token")
    parts = [MT_START]
    for position, item in enumerate(items):
        index = _as_index(item, f"mask token at position {position}")
        if not 0 <= index < size:
            raise ValueError(f"mask token at position {position} is {index}, outside [0, {size})")
        parts.append(f"<|mt_{index}|>")
    parts.append(MT_END)
    return "".join(parts)


def _as_index(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an int, got a bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError as err:
        raise ValueError(f"{what} must be an int, got {type(value).__name__} {value!r}") from err
