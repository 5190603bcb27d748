"""Conversations -> model inputs: token ids with supervised labels, image tiles and the masks of each answer.

The text is the model's chat format around the turns (`format_conversation`); `<image>` becomes `<img>` + the
image tokens of the sample's tiles + `</img>`. Labels keep the ids of every gpt turn and its end-of-turn
separator (matched through the fast tokenizer's character offsets) and are -100 elsewhere, which is the standard
InternVL preprocessing. Mask placeholders (`<|mt_start|>` + 32 x `<|mt_0|>`) stay in the ids: the trainer
writes the frozen encoder's codes into them (`MaskTokenTargets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from himtok_lmm_adapter import IGNORE_INDEX, HiMTokModel, TilingConfig, find_mask_spans, preprocess_images
from himtok_prompt_templates import expand_image_placeholder, format_conversation

IMAGE_PLACEHOLDER = "<image>"


class SampleError(ValueError):
    """A sample that cannot be trained on; the message is the skip reason."""


@dataclass
class EncodedSample:
    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor  # [tiles, 3, S, S]
    masks: torch.Tensor | None  # [n, H, W] float in [0, 1], one per mask placeholder, or None
    key: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T], right-padded
    labels: torch.Tensor  # [B, T], -100 on prompt and padding
    attention_mask: torch.Tensor  # [B, T]
    pixel_values: torch.Tensor  # [sum of tiles, 3, S, S]
    masks: list[torch.Tensor | None]  # per sample
    keys: list[str]

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.input_ids.to(device),
            self.labels.to(device),
            self.attention_mask.to(device),
            self.pixel_values.to(device),
            [m.to(device) if m is not None else None for m in self.masks],
            self.keys,
        )


class SampleEncoder:
    """Encodes `ConversationSample`s for one model (its tokenizer, chat format, tiling and image tokens)."""

    def __init__(self, model: HiMTokModel, max_length: int, tiling: TilingConfig | None = None) -> None:
        self.tokenizer = model.tokenizer
        self.vocab = model.vocab
        self.settings = model.settings
        self.tiling = tiling or model.settings.tiling
        self.tokens_per_tile = model.tokens_per_tile
        self.length = model.settings.num_mask_tokens
        self.max_length = max_length

    def text(self, turns: Sequence[dict[str, str]], num_tiles: int) -> tuple[str, list[tuple[int, int]]]:
        """The chat text with the image placeholder expanded, and the supervised character ranges."""
        turns = [dict(t) for t in turns]
        if not turns or IMAGE_PLACEHOLDER not in turns[0].get("value", ""):
            raise SampleError("the first human turn holds no <image> placeholder")
        first = turns[0]["value"]
        turns[0]["value"] = expand_image_placeholder(first, self.tokens_per_tile * num_tiles)
        return format_conversation(
            turns, chat_format=self.settings.chat_format, system_message=self.settings.system_message
        )

    def encode_text(self, turns: Sequence[dict[str, str]], num_tiles: int) -> tuple[list[int], list[int]]:
        try:
            text, ranges = self.text(turns, num_tiles)
        except ValueError as error:
            raise SampleError(str(error)) from None
        encoded = self.tokenizer(text, return_offsets_mapping=True)
        ids: list[int] = list(encoded["input_ids"])
        labels = [IGNORE_INDEX] * len(ids)
        for i, (start, end) in enumerate(encoded["offset_mapping"]):
            if end > start and any(lo <= start and end <= hi for lo, hi in ranges):
                labels[i] = ids[i]
        return ids, labels

    def encode(self, sample: Any) -> EncodedSample:
        """One sample (`image`, `turns`, `masks`, `key`, `meta`), or `SampleError` with the reason."""
        pixel_values, tiles = preprocess_images([sample.image], self.tiling)
        ids, labels = self.encode_text(sample.turns, tiles[0])
        if len(ids) > self.max_length:
            raise SampleError(f"{len(ids)} tokens, above --max-length {self.max_length}")
        row = torch.tensor([ids])
        spans, cut = find_mask_spans(row, self.vocab, self.length)
        for span in spans[0]:
            end = span.start + self.length + 1
            well_formed = bool(self.vocab.is_mask_id(row[0, span.positions]).all())
            if cut or not well_formed or end >= len(ids) or ids[end] != self.vocab.end_id:
                raise SampleError(
                    f"a mask placeholder is not <|mt_start|> + {self.length} mask tokens + <|mt_end|>"
                )
        if cut:
            raise SampleError("a mask placeholder is cut off by the end of the text")
        masks = list(sample.masks)
        if len(spans[0]) != len(masks):
            raise SampleError(f"{len(spans[0])} mask placeholders but {len(masks)} masks")
        width, height = sample.image.size
        for mask in masks:
            if tuple(mask.shape) != (height, width):
                raise SampleError(
                    f"a mask of size {tuple(mask.shape)} for an image of size {(height, width)}"
                )
        stacked = (
            torch.from_numpy(np.stack([np.asarray(m, dtype=np.float32) for m in masks])) if masks else None
        )
        return EncodedSample(ids, labels, pixel_values, stacked, str(sample.key), dict(sample.meta))


def collate(samples: Sequence[EncodedSample], pad_id: int) -> Batch:
    """Right-pad a list of encoded samples into one batch."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    width = max(len(s.input_ids) for s in samples)
    input_ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(samples), width), dtype=torch.long)
    for row, sample in enumerate(samples):
        n = len(sample.input_ids)
        input_ids[row, :n] = torch.tensor(sample.input_ids)
        labels[row, :n] = torch.tensor(sample.labels)
        attention[row, :n] = 1
    return Batch(
        input_ids=input_ids,
        labels=labels,
        attention_mask=attention,
        pixel_values=torch.cat([s.pixel_values for s in samples]),
        masks=[s.masks for s in samples],
        keys=[s.key for s in samples],
    )
