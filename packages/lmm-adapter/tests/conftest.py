"""Shared fixtures: a tiny InternVL with the mask vocabulary and a tiny mask tokenizer (both CPU, random)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from himtok_lmm_adapter import MaskVocab, add_mask_vocabulary, tiny_internvl
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig

# The tiny models gain nothing from intra-op threads, and the CI machines are small and shared.
torch.set_num_threads(1)


@dataclass
class TinyLMM:
    model: Any
    tokenizer: Any
    vocab: MaskVocab


def spread_mask_rows(model: Any, vocab: MaskVocab, seed: int = 0, scale: float = 0.5) -> None:
    """Mean-initialised output rows are all equal (every mask code ties); give them distinct values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head[vocab.mask_slice] += scale * torch.randn(head[vocab.mask_slice].shape, generator=g)


def build_tiny_lmm() -> TinyLMM:
    model, tokenizer = tiny_internvl(seed=0)
    vocab = add_mask_vocabulary(model, tokenizer)
    spread_mask_rows(model, vocab)
    return TinyLMM(model, tokenizer, vocab)


@pytest.fixture
def tiny_lmm() -> TinyLMM:
    """A fresh model per test (tests may train or modify it)."""
    return build_tiny_lmm()


@pytest.fixture(scope="module")
def shared_lmm() -> TinyLMM:
    """One model per module, for tests that only run it (generation, decoding)."""
    return build_tiny_lmm()


def small_mask_tokenizer(seed: int = 0) -> MaskTokenizer:
    config = MaskTokenizerConfig.preset(
        "tiny",
        encoder_width=32,
        decoder_width=32,
        encoder_heads=2,
        decoder_heads=2,
        encoder_depth=1,
        decoder_depth=1,
        head_hidden=32,
        z_channels=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MaskTokenizer(config).eval()


@pytest.fixture
def mask_tokenizer() -> MaskTokenizer:
    return small_mask_tokenizer()


@pytest.fixture(scope="module")
def shared_mask_tokenizer() -> MaskTokenizer:
    """One mask tokenizer per module, for tests that do not modify it."""
    return small_mask_tokenizer()
