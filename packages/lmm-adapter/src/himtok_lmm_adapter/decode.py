"""Masks from `model.generate` output: every `<|mt_start|>` span of every answer, soft or hard.

`soft` is the official path: the distribution over the K mask columns at each of the `length` positions
after `<|mt_start|>` (softmax of 2 x logits), times the un-normalised codebook, through the de-tokenizer.
`hard` decodes the argmax codes of the same positions (with the l2-normalised codebook, as the tokenizer's
own hard decode does). Under greedy decoding with `MaskTokenLogitsProcessor` the argmax codes are exactly
the mask tokens the model wrote. Both need the per-step logits: call `generate(...,
output_logits=True, return_dict_in_generate=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from himtok_lmm_adapter.soft import OFFICIAL_TEMPERATURE, mask_token_probs
from himtok_lmm_adapter.spans import MaskSpan, find_mask_spans
from himtok_lmm_adapter.vocab import MaskVocab

Mode = Literal["soft", "hard"]


@dataclass
class GeneratedMasks:
    """All masks found in a batch of answers.

    masks: [M, S, S] probabilities, one per complete span, in (sample, position) order.
    sample_index: [M] which answer each mask came from. codes: [M, length] argmax mask codes.
    spans: the M spans (position of `<|mt_start|>` in `sequences`, prompt included when it is there).
    well_formed: [M] the span holds `length` mask tokens and is closed by `<|mt_end|>`.
    truncated: spans whose `length` positions were cut off by the end of generation (not decoded).
    """

    masks: torch.Tensor
    sample_index: torch.Tensor
    codes: torch.Tensor
    spans: list[MaskSpan]
    well_formed: torch.Tensor
    batch_size: int
    mode: Mode
    truncated: list[MaskSpan] = field(default_factory=list)

    @property
    def has_mask(self) -> torch.Tensor:
        """Bool [B]: the answer holds at least one complete mask span."""
        counts = torch.bincount(self.sample_index.cpu(), minlength=self.batch_size)
        return counts > 0

    @property
    def samples_without_mask(self) -> list[int]:
        return (~self.has_mask).nonzero().flatten().tolist()

    def for_sample(self, sample: int) -> torch.Tensor:
        """[n, S, S] masks of one answer (n may be 0)."""
        if not 0 <= sample < self.batch_size:
            raise ValueError(f"sample {sample} is outside the batch of {self.batch_size}")
        return self.masks[self.sample_index.to(self.masks.device) == sample]

    def first_per_sample(self) -> torch.Tensor:
        """[B, S, S]: the first mask of each answer, zeros where there is none (the official output)."""
        out = self.masks.new_zeros(self.batch_size, *self.masks.shape[1:])
        for row in reversed(range(len(self.spans))):
            out[self.spans[row].sample] = self.masks[row]
        return out


def generated_tokens_and_logits(generate_output: Any) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The sequences [B, P + N] and the N per-step logits ([B, V] each) of a `generate` output.

    The last N tokens are the generated ones. `sequences` holds the prompt too (P > 0) when generation
    started from `input_ids`, and only the new tokens (P = 0) when it started from `inputs_embeds`, as the
    official code does.
    """
    logits = getattr(generate_output, "logits", None)
    sequences = getattr(generate_output, "sequences", None)
    if sequences is None or logits is None:
        raise ValueError(
            "masks_from_generation needs the per-step logits: call model.generate(..., output_logits=True, "
            "return_dict_in_generate=True) and pass its output"
        )
    if sequences.shape[1] < len(logits):
        raise ValueError(
            f"sequences have {sequences.shape[1]} tokens but there are {len(logits)} logits steps"
        )
    return sequences, tuple(logits)


@dataclass
class GeneratedSpans:
    """The mask spans of a batch of answers with their token distributions, before decoding.

    probs: [M, length, K] softmax over the mask columns; codes: [M, length] argmax codes; spans, well_formed
    and truncated as in `GeneratedMasks`; tokens: the `generate` sequences.
    """

    tokens: torch.Tensor
    spans: list[MaskSpan]
    probs: torch.Tensor
    codes: torch.Tensor
    well_formed: torch.Tensor
    truncated: list[MaskSpan]
    batch_size: int


def generated_spans(
    generate_output: Any, vocab: MaskVocab, length: int = 32, *, temperature: float = OFFICIAL_TEMPERATURE
) -> GeneratedSpans:
    """Every complete mask span of every generated answer, with its soft distribution and argmax codes."""
    tokens, logits = generated_tokens_and_logits(generate_output)
    prompt = tokens.shape[1] - len(logits)
    complete, truncated = find_mask_spans(tokens, vocab, length)
    # Only spans whose mask positions were generated have logits; a prompt may end with <|mt_start|>.
    spans = [span for row in complete for span in row if span.start + 1 >= prompt]
    truncated = [span for span in truncated if span.start + 1 >= prompt]
    if not spans:
        empty = torch.zeros(0, length, vocab.codebook_size)
        return GeneratedSpans(
            tokens,
            [],
            empty,
            torch.zeros(0, length, dtype=torch.long),
            torch.zeros(0, dtype=torch.bool),
            truncated,
            tokens.shape[0],
        )
    # Gather only the span positions: stacking every step would hold B x N x V floats.
    span_logits = torch.stack(
        [
            torch.stack([logits[p - prompt][s.sample] for p in range(s.start + 1, s.start + 1 + length)])
            for s in spans
        ]
    )  # [M, length, V]
    probs = mask_token_probs(span_logits, vocab, temperature)
    # Argmax of the logits, not of the probabilities: float32 softmax can round near-ties to exact ties.
    codes = span_logits[..., vocab.mask_slice].argmax(dim=-1)
    return GeneratedSpans(
        tokens, spans, probs, codes, _well_formed(tokens, spans, vocab), truncated, tokens.shape[0]
    )


@torch.no_grad()
def decode_spans(
    probs: torch.Tensor,
    codes: torch.Tensor,
    tokenizer_model: Any,
    mode: Mode = "soft",
    num_tokens: int | None = None,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """[M, S, S] mask probabilities from span distributions (`soft`) or codes (`hard`), first `num_tokens`."""
    if mode not in ("soft", "hard"):
        raise ValueError(f"mode must be 'soft' or 'hard', got {mode!r}")
    length = codes.shape[1]
    keep = length if num_tokens is None else num_tokens
    if not 1 <= keep <= length:
        raise ValueError(f"num_tokens must lie in 1..{length}, got {num_tokens}")
    if mode == "soft":
        return tokenizer_model.decode_soft(probs[:, :keep], size=size)
    return tokenizer_model.decode(codes[:, :keep], size=size)


def masks_from_generation(
    generate_output: Any,
    vocab: MaskVocab,
    tokenizer_model: Any,
    mode: Mode = "soft",
    length: int = 32,
    *,
    temperature: float = OFFICIAL_TEMPERATURE,
    size: tuple[int, int] | None = None,
    num_tokens: int | None = None,
) -> GeneratedMasks:
    """Decode every complete mask span of every generated answer.

    `tokenizer_model` is a `himtok_mask_tokenizer.MaskTokenizer` (anything with `decode_soft(probs)` and
    `decode(codes)`). `size` resizes the masks back to an image size (the tokenizer's recorded transform).
    `num_tokens` decodes only the first tokens of each span (coarse to fine; default: all `length`).
    Answers without a mask are reported in `GeneratedMasks.samples_without_mask`, not raised.
    """
    if mode not in ("soft", "hard"):
        raise ValueError(f"mode must be 'soft' or 'hard', got {mode!r}")
    if num_tokens is not None and not 1 <= num_tokens <= length:
        raise ValueError(f"num_tokens must lie in 1..{length}, got {num_tokens}")
    found = generated_spans(generate_output, vocab, length, temperature=temperature)
    if not found.spans:
        side = size or (tokenizer_model.config.image_size,) * 2
        masks = torch.zeros(0, *side)
    else:
        masks = decode_spans(found.probs, found.codes, tokenizer_model, mode, num_tokens, size)
    return GeneratedMasks(
        masks=masks,
        sample_index=torch.tensor([s.sample for s in found.spans], dtype=torch.long),
        codes=found.codes,
        spans=found.spans,
        well_formed=found.well_formed,
        batch_size=found.batch_size,
        mode=mode,
        truncated=found.truncated,
    )


def _well_formed(tokens: torch.Tensor, spans: list[MaskSpan], vocab: MaskVocab) -> torch.Tensor:
    flags = []
    for span in spans:
        inside = tokens[span.sample, span.positions]
        end_pos = span.start + span.length + 1
        closed = end_pos < tokens.shape[1] and int(tokens[span.sample, end_pos]) == vocab.end_id
        flags.append(bool(vocab.is_mask_id(inside).all()) and closed)
    return torch.tensor(flags, dtype=torch.bool)
