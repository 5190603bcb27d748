from __future__ import annotations

import pytest
import torch
from himtok_lmm_adapter import IGNORE_INDEX, MaskTokenTargets, MaskVocab
from hypothesis import given, settings
from hypothesis import strategies as st

VOCAB = MaskVocab(start_id=3, end_id=4, first_mask_id=10, codebook_size=1024)
L = 32


def box_mask(top: int, left: int, size: int = 24, side: int = 64) -> torch.Tensor:
    mask = torch.zeros(side, side)
    mask[top : top + size, left : left + size] = 1
    return mask


def answer(prefix: int, placeholder: list[int] | None = None, suffix: int = 2) -> list[int]:
    """`prefix` text tokens, start, the placeholder (official: <|mt_0|> x 32), end, `suffix` text tokens."""
    codes = placeholder if placeholder is not None else [0] * L
    return (
        [1] * prefix
        + [VOCAB.start_id, *[VOCAB.first_mask_id + c for c in codes], VOCAB.end_id]
        + [2] * suffix
    )


def test_placeholders_get_encoder_codes_only_where_supervised(mask_tokenizer) -> None:
    preconverted = list(range(100, 132))
    rows = [
        answer(3, suffix=4),  # supervised answer with a mask
        answer(5),  # mask in the human turn: unsupervised
        answer(3, preconverted, suffix=4),  # pre-converted codes, no mask: must survive
        [1] * (L + 9),  # no span at all
    ]
    input_ids = torch.tensor(rows)
    labels = input_ids.clone()
    labels[:, :2] = IGNORE_INDEX
    labels[1] = IGNORE_INDEX
    masks = torch.stack([box_mask(4, 8), box_mask(30, 30), torch.zeros(64, 64), box_mask(0, 0)])
    has_mask = torch.tensor([True, True, False, True])
    result = MaskTokenTargets(VOCAB, mask_tokenizer)(input_ids, labels, masks, has_mask=has_mask)

    expected = mask_tokenizer.encode(masks[:2]) + VOCAB.first_mask_id
    assert torch.equal(result.input_ids[0, 4 : 4 + L], expected[0])
    assert torch.equal(result.labels[0, 4 : 4 + L], expected[0])
    assert torch.equal(result.input_ids[1, 6 : 6 + L], expected[1])
    assert bool((result.labels[1] == IGNORE_INDEX).all())
    assert torch.equal(result.input_ids[2], input_ids[2]) and torch.equal(result.labels[2], labels[2])
    assert torch.equal(result.input_ids[3], input_ids[3])
    assert result.filled.tolist() == [1, 1, 0, 0]
    # Outside the spans nothing changed, and the inputs were not modified in place.
    outside = torch.ones_like(input_ids, dtype=torch.bool)
    outside[0, 4 : 4 + L] = outside[1, 6 : 6 + L] = False
    assert torch.equal(result.input_ids[outside], input_ids[outside])
    assert torch.equal(result.labels[outside], labels[outside])
    assert input_ids.tolist() == rows


def test_several_masks_per_sample_fill_the_spans_in_order(mask_tokenizer) -> None:
    row = answer(2) + answer(1) + answer(1)
    input_ids = torch.tensor([row, row])
    masks = [torch.stack([box_mask(0, 0), box_mask(20, 20, side=64)]), None]
    result = MaskTokenTargets(VOCAB, mask_tokenizer)(input_ids, input_ids.clone(), masks)
    codes = mask_tokenizer.encode(masks[0]) + VOCAB.first_mask_id
    first, second = 3, len(answer(2)) + 2
    assert torch.equal(result.input_ids[0, first : first + L], codes[0])
    assert torch.equal(result.input_ids[0, second : second + L], codes[1])
    third = len(answer(2)) + len(answer(1)) + 2
    assert torch.equal(result.input_ids[0, third : third + L], input_ids[0, third : third + L])
    assert torch.equal(result.input_ids[1], input_ids[1])
    assert result.filled.tolist() == [2, 0]


def test_bad_placeholders_and_shapes_raise(mask_tokenizer) -> None:
    targets = MaskTokenTargets(VOCAB, mask_tokenizer)
    row = answer(2)
    row[5] = 1  # text inside the placeholder
    ids = torch.tensor([row])
    with pytest.raises(ValueError, match="not all mask tokens"):
        targets(ids, ids.clone(), box_mask(0, 0)[None])
    with pytest.raises(ValueError, match=r"\[B=1, H, W\]"):
        targets(ids, ids.clone(), torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="both be"):
        targets(ids, ids[:, :-1], box_mask(0, 0)[None])
    with pytest.raises(ValueError, match="has_mask only applies"):
        targets(ids, ids.clone(), [box_mask(0, 0)], has_mask=torch.tensor([True]))


@settings(max_examples=15)
@given(
    prefix=st.integers(0, 6),
    suffix=st.integers(0, 4),
    supervised=st.lists(st.booleans(), min_size=L + 2, max_size=L + 2),
    data=st.data(),
)
def test_replacement_respects_supervision_and_leaves_the_rest(
    shared_mask_tokenizer, prefix: int, suffix: int, supervised: list[bool], data
) -> None:
    placeholder = data.draw(st.lists(st.integers(0, 1023), min_size=L, max_size=L))
    input_ids = torch.tensor([answer(prefix, placeholder, suffix)])
    labels = input_ids.clone()
    span = slice(prefix, prefix + L + 2)
    labels[0, span] = torch.where(torch.tensor(supervised), labels[0, span], IGNORE_INDEX)
    mask = box_mask(data.draw(st.integers(0, 40)), data.draw(st.integers(0, 40)))
    result = MaskTokenTargets(VOCAB, shared_mask_tokenizer)(input_ids, labels, mask[None])
    codes = shared_mask_tokenizer.encode(mask[None])[0] + VOCAB.first_mask_id
    positions = slice(prefix + 1, prefix + 1 + L)
    assert torch.equal(result.input_ids[0, positions], codes)
    sup = torch.tensor(supervised[1 : L + 1])
    assert torch.equal(result.labels[0, positions][sup], codes[sup])
    assert bool((result.labels[0, positions][~sup] == IGNORE_INDEX).all())
    keep = torch.ones(input_ids.shape[1], dtype=torch.bool)
    keep[positions] = False
    assert torch.equal(result.input_ids[0, keep], input_ids[0, keep])
    assert torch.equal(result.labels[0, keep], labels[0, keep])
