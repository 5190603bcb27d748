"""What `HiMTokModel.segment` returns: the answer, its masks at the image's size, boxes, and what went wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from himtok_prompt_templates import ParsedResponse, parse_response

from himtok_lmm_adapter.decode import GeneratedSpans, Mode, decode_spans, generated_spans
from himtok_lmm_adapter.vocab import MaskVocab


@dataclass
class SegmentedMask:
    """One mask of an answer: probabilities and the thresholded mask at the image's size, and its codes."""

    soft: torch.Tensor  # [H, W] float32 in [0, 1]
    binary: torch.Tensor  # [H, W] bool
    codes: list[int]
    num_tokens: int  # how many of the codes were decoded
    well_formed: bool  # all mask tokens, closed by <|mt_end|>

    @property
    def area(self) -> int:
        return int(self.binary.sum())

    def box(self) -> tuple[int, int, int, int] | None:
        """Tight box `(x1, y1, x2, y2)` of the binary mask in pixels (exclusive end), None when empty."""
        ys, xs = torch.nonzero(self.binary, as_tuple=True)
        if ys.numel() == 0:
            return None
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@dataclass
class Segmentation:
    """The result for one image and prompt."""

    answer: str
    masks: list[SegmentedMask]
    boxes: list[tuple[float, float, float, float]]  # boxes written in the answer, in pixels
    size: tuple[int, int]  # (height, width) of the image
    parsed: ParsedResponse
    token_ids: list[int]
    finished: bool  # the answer ended with the end-of-turn token (not cut off by max_new_tokens)
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def mask(self) -> torch.Tensor | None:
        """The first mask (binary, at the image's size), or None: what the official runner outputs."""
        return self.masks[0].binary if self.masks else None

    @property
    def ok(self) -> bool:
        return self.error is None


def _answer_ids(row: torch.Tensor, end_of_turn_id: int) -> tuple[list[int], bool]:
    ids = row.tolist()
    if end_of_turn_id in ids:
        return ids[: ids.index(end_of_turn_id)], True
    return ids, False


def _error(found: GeneratedSpans, sample: int, masks: list[SegmentedMask], finished: bool) -> str | None:
    if any(m.well_formed for m in masks):
        return None
    if any(span.sample == sample for span in found.truncated):
        return "the answer was cut off by max_new_tokens inside a mask"
    if masks:
        return "the mask span is not closed by <|mt_end|> or holds other tokens"
    if not finished:
        return "the answer holds no mask and was cut off by max_new_tokens"
    return "the answer holds no mask"


def build_segmentations(
    output: Any,
    prompt_length: int,
    sizes: Sequence[tuple[int, int]],
    *,
    tokenizer: Any,
    vocab: MaskVocab,
    mask_tokenizer: Any,
    end_of_turn_id: int,
    length: int = 32,
    num_tokens: int = 32,
    mode: Mode = "soft",
    threshold: float = 0.5,
    answer_prefix: str = "",
) -> list[Segmentation]:
    """One `Segmentation` per row of a `generate` output (`output_logits=True, return_dict_in_generate=True`)."""
    if not 1 <= num_tokens <= length:
        raise ValueError(f"num_mask_tokens must lie in 1..{length}, got {num_tokens}")
    found = generated_spans(output, vocab, length)
    new_tokens = found.tokens[:, prompt_length:].cpu()
    results = []
    for sample, (height, width) in enumerate(sizes):
        rows = [i for i, span in enumerate(found.spans) if span.sample == sample]
        masks: list[SegmentedMask] = []
        if rows:
            index = torch.tensor(rows)
            soft = decode_spans(
                found.probs[index], found.codes[index], mask_tokenizer, mode, num_tokens, (height, width)
            )
            for j, i in enumerate(rows):
                probs = soft[j].float().cpu()
                masks.append(
                    SegmentedMask(
                        soft=probs,
                        binary=probs > threshold,
                        codes=found.codes[i].tolist(),
                        num_tokens=num_tokens,
                        well_formed=bool(found.well_formed[i]),
                    )
                )
        ids, finished = _answer_ids(new_tokens[sample], end_of_turn_id)
        answer = answer_prefix + tokenizer.decode(ids, skip_special_tokens=False)
        parsed = parse_response(answer, expected_length=length, codebook_size=vocab.codebook_size)
        boxes = [box.to_pixels(width, height) for box in parsed.boxes]
        results.append(
            Segmentation(
                answer=answer,
                masks=masks,
                boxes=boxes,
                size=(height, width),
                parsed=parsed,
                token_ids=ids,
                finished=finished,
                error=_error(found, sample, masks, finished),
                problems=[p.message for p in parsed.problems],
            )
        )
    return results
