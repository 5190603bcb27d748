"""Fixtures shared by the apps tests: a tiny random `HiMTokModel` saved once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# The tiny models gain nothing from intra-op threads, and the CI machines are small and shared.
torch.set_num_threads(1)

SMALL_MASK_TOKENIZER = {
    "encoder_width": 32,
    "decoder_width": 32,
    "encoder_heads": 2,
    "decoder_heads": 2,
    "encoder_depth": 1,
    "decoder_depth": 1,
    "head_hidden": 32,
    "z_channels": 16,
}


def build_tiny_himtok(directory: Path, seed: int = 0) -> Path:
    """`himtok_lmm_adapter.tiny_himtok_model` with a smaller mask tokenizer, saved with `save_pretrained`.

    The mask rows of the output head start equal (mean resizing), so every mask code would tie; they get
    distinct values, so that a constrained answer writes varied codes."""
    from himtok_lmm_adapter import tiny_himtok_model

    model = tiny_himtok_model(seed=seed, max_tiles=2, **SMALL_MASK_TOKENIZER)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head = model.lmm.get_output_embeddings().weight
        rows = model.vocab.mask_slice
        head[rows] += 0.5 * torch.randn(head[rows].shape, generator=generator)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_himtok_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random `HiMTokModel` directory (read-only use: tests must not write into it)."""
    return build_tiny_himtok(tmp_path_factory.mktemp("tiny-himtok") / "model")
