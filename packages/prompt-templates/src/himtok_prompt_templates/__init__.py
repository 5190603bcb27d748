"""Prompt templates and a never-crashing response parser for HiMTok mask-token conversations (pure Python)."""

from himtok_prompt_templates.tokens import (
    BOX_END,
    BOX_START,
    CODEBOOK_SIZE,
    IMAGE_TOKEN,
    MASK_TOKEN_PATTERN,
    MT_END,
    MT_START,
    NUM_MASK_TOKENS,
    POINT_END,
    POINT_START,
    REF_END,
    REF_START,
    format_mask_tokens,
    mask_token,
    mask_vocabulary,
    placeholder_tokens,
)

__version__ = "0.1.0"

__all__ = [
    "BOX_END",
    "BOX_START",
    "CODEBOOK_SIZE",
    "IMAGE_TOKEN",
    "MASK_TOKEN_PATTERN",
    "MT_END",
    "MT_START",
    "NUM_MASK_TOKENS",
    "POINT_END",
    "POINT_START",
    "REF_END",
    "REF_START",
    "__version__",
    "format_mask_tokens",
    "mask_token",
    "mask_vocabulary",
    "placeholder_tokens",
]
