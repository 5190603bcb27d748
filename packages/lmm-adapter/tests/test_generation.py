from __future__ import annotations

import pytest
import torch
from himtok_lmm_adapter import MaskTokenLogitsProcessor, MaskVocab
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LogitsProcessor, LogitsProcessorList

VOCAB = MaskVocab(start_id=3, end_id=4, first_mask_id=5, codebook_size=8)  # ids 0..2 are "text"
V = 16  # columns 13..15: more text


def allowed_columns(processor: MaskTokenLogitsProcessor, ids: list[int]) -> set[int]:
    raw = torch.randn(1, V)
    scores = processor(torch.tensor([ids]), raw.clone())
    allowed = torch.isfinite(scores[0])
    assert torch.equal(scores[0][allowed], raw[0][allowed])  # allowed columns keep their value
    return set(allowed.nonzero().flatten().tolist())


def test_processor_leaves_the_raw_scores_alone() -> None:
    # generate() keeps the tensor it passes in as the raw `output_logits`: it must not be edited in place.
    raw = torch.randn(2, V)
    copy = raw.clone()
    MaskTokenLogitsProcessor(VOCAB, 3)(torch.tensor([[0, VOCAB.start_id], [0, 1]]), raw)
    assert torch.equal(raw, copy)


@given(
    prefix=st.lists(st.sampled_from([0, 1, 2, 13, 14]), max_size=6),
    written=st.integers(0, 6),
    length=st.integers(1, 5),
)
def test_processor_allows_exactly_the_documented_columns(
    prefix: list[int], written: int, length: int
) -> None:
    processor = MaskTokenLogitsProcessor(VOCAB, length=length)
    mask_cols = set(range(5, 13))
    text_cols = set(range(V)) - mask_cols - {VOCAB.end_id}
    ids = [*prefix, VOCAB.start_id, *([6] * min(written, length))]
    if written > length:  # a closed span followed by text
        ids += [VOCAB.end_id, *([0] * (written - length))]
    got = allowed_columns(processor, ids)
    if written < length:
        assert got == mask_cols
    elif written == length:
        assert got == {VOCAB.end_id}
    else:
        assert got == text_cols
    assert allowed_columns(processor, prefix or [0]) == text_cols
    loose = MaskTokenLogitsProcessor(VOCAB, length=length, forbid_outside=False)
    assert allowed_columns(loose, prefix or [0]) == set(range(V))


def test_processor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive int"):
        MaskTokenLogitsProcessor(VOCAB, length=0)
    with pytest.raises(ValueError, match="columns"):
        MaskTokenLogitsProcessor(VOCAB)(torch.tensor([[0]]), torch.zeros(1, 10))


class StartAt(LogitsProcessor):
    """Force `<|mt_start|>` at a chosen generation step per row (-1: never)."""

    def __init__(self, start_id: int, steps: list[int], prompt_len: int) -> None:
        self.start_id, self.steps, self.prompt_len = start_id, steps, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_len
        for row, at in enumerate(self.steps):
            if at == step:
                scores[row] = float("-inf")
                scores[row, self.start_id] = 0.0
        return scores


def check_constrained_generation(
    lmm, words: list[int], steps: list[int], sample: bool, seed: int, length: int
) -> None:
    model, tokenizer, vocab = lmm.model, lmm.tokenizer, lmm.vocab
    prompts = [" ".join(["segment the dog"] * n) for n in words]  # different lengths -> left padding
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    assert tokenizer.padding_side == "left"
    prompt_len = batch["input_ids"].shape[1]
    processors = LogitsProcessorList(
        [StartAt(vocab.start_id, steps, prompt_len), MaskTokenLogitsProcessor(vocab, length)]
    )
    torch.manual_seed(seed)
    out = model.generate(
        **batch,
        max_new_tokens=max(steps) + length + 4,
        min_new_tokens=max(steps) + length + 4,
        do_sample=sample,
        top_k=0,
        logits_processor=processors,
    )
    new = out[:, prompt_len:]
    for row, at in enumerate(steps):
        tokens = new[row].tolist()
        if at >= 0:
            assert tokens[at] == vocab.start_id
            assert tokens[at + length + 1] == vocab.end_id  # the forced span is complete
        assert_spans_well_formed(tokens, vocab, length)


def assert_spans_well_formed(tokens: list[int], vocab: MaskVocab, length: int) -> None:
    """Every start opens exactly `length` mask tokens closed by an end; no mask token or end elsewhere.

    (Sampling may open further spans on its own: that is allowed, a malformed one is not.)
    """
    inside: list[int] = []
    ends = 0
    i = 0
    while i < len(tokens):
        if tokens[i] == vocab.start_id:
            span = list(range(i + 1, min(i + 1 + length, len(tokens))))
            inside += span
            if i + 1 + length < len(tokens):
                assert tokens[i + 1 + length] == vocab.end_id
                ends += 1
            i += length + 2
        else:
            i += 1
    mask_positions = [i for i, t in enumerate(tokens) if vocab.first_mask_id <= t <= vocab.last_id]
    assert mask_positions == inside
    assert tokens.count(vocab.end_id) == ends


@settings(max_examples=6)
@given(
    words=st.lists(st.integers(1, 9), min_size=3, max_size=3),
    steps=st.lists(st.integers(-1, 5), min_size=3, max_size=3),
    sample=st.booleans(),
    seed=st.integers(0, 2**16),
    length=st.integers(1, 6),
)
def test_generation_writes_exactly_length_mask_tokens_between_start_and_end(
    shared_lmm, words: list[int], steps: list[int], sample: bool, seed: int, length: int
) -> None:
    check_constrained_generation(shared_lmm, words, steps, sample, seed, length)


@pytest.mark.parametrize("sample", [False, True])
def test_generation_with_the_official_32_tokens(shared_lmm, sample: bool) -> None:
    check_constrained_generation(shared_lmm, [2, 5, 1], [0, 3, -1], sample, seed=7, length=32)


def test_prompt_ending_with_start_token_is_continued_with_a_full_span(tiny_lmm) -> None:
    model, tokenizer, vocab = tiny_lmm.model, tiny_lmm.tokenizer, tiny_lmm.vocab
    batch = tokenizer(
        ["The mask appears at <|mt_start|>", "Sure, <|mt_start|>"], return_tensors="pt", padding=True
    )
    out = model.generate(
        **batch, max_new_tokens=8 + 1, do_sample=False, logits_processor=[MaskTokenLogitsProcessor(vocab, 8)]
    )
    new = out[:, batch["input_ids"].shape[1] :]
    assert bool(vocab.is_mask_id(new[:, :8]).all())
    assert new[:, 8].tolist() == [vocab.end_id] * 2


def test_beam_search_keeps_the_spans_well_formed(shared_lmm) -> None:
    model, tokenizer, vocab = shared_lmm.model, shared_lmm.tokenizer, shared_lmm.vocab
    batch = tokenizer(["Segment the dog. <|mt_start|>", "road"], return_tensors="pt", padding=True)
    out = model.generate(
        **batch,
        max_new_tokens=12,
        num_beams=3,
        num_return_sequences=3,
        do_sample=False,
        logits_processor=[MaskTokenLogitsProcessor(vocab, 8)],
    )
    new = out[:, batch["input_ids"].shape[1] :]
    assert bool(vocab.is_mask_id(new[:3, :8]).all()) and new[:3, 8].tolist() == [vocab.end_id] * 3
    for row in out.tolist():  # whole rows: the first prompt opens the span
        assert_spans_well_formed(row, vocab, 8)
