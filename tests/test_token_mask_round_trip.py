"""Cross-package round trips: masks -> tokens -> text -> tokens -> masks, through the public APIs only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig
from himtok_prompt_templates import build_conversation, format_mask_tokens, parse_response
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def tokenizer() -> MaskTokenizer:
    torch.manual_seed(0)
    return MaskTokenizer(MaskTokenizerConfig.preset("tiny")).eval()


def random_masks(seed: int, batch: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    masks = np.zeros((batch, height, width), dtype=bool)
    for i in range(batch):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(2, height / 2), rng.uniform(2, width / 2)
        masks[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return masks


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000), length=st.integers(1, 32))
def test_tokens_survive_the_text_round_trip_and_decode_identically(tokenizer, seed, length):
    masks = random_masks(seed, 2, 40, 56)
    with torch.no_grad():
        tokens = tokenizer.encode(masks)
        texts = [format_mask_tokens(row[:length].tolist()) for row in tokens]
        parsed = [parse_response(text, expected_length=length) for text in texts]
        assert all(p.masks and p.masks[0].ok for p in parsed)
        recovered = torch.tensor([p.masks[0].tokens for p in parsed])
        assert torch.equal(recovered, tokens[:, :length])
        direct = tokenizer.decode(tokens[:, :length], size=(40, 56))
        via_text = tokenizer.decode(recovered, size=(40, 56))
    assert direct.shape == (2, 40, 56)
    assert torch.equal(direct, via_text)
    assert float(direct.min()) >= 0.0 and float(direct.max()) <= 1.0


@settings(max_examples=10)
@given(seed=st.integers(0, 10_000))
def test_a_training_conversation_carries_the_encoder_codes(tokenizer, seed):
    masks = random_masks(seed, 1, 64, 64)
    with torch.no_grad():
        tokens = tokenizer.encode(masks)[0].tolist()
    conversation = build_conversation("segment", {"expression": "the blob", "tokens": tokens}, seed=seed)
    assert conversation[0]["from"] == "human" and conversation[1]["from"] == "gpt"
    answer = parse_response(conversation[1]["value"])
    assert answer.mask_tokens is not None and list(answer.mask_tokens) == tokens
    assert answer.masks[0].complete and not answer.problems
