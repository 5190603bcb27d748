"""The fused, blocked BCE/Dice statistics against the plain autograd definition."""

from __future__ import annotations

import himtok_hml_loss.terms as terms
import numpy as np
import pytest
import torch
from himtok_hml_loss.terms import map_statistics, map_statistics_reference
from hypothesis import given, settings
from hypothesis import strategies as st


def assert_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1.3e-6, atol: float = 1e-5) -> None:
    """numpy's assert_allclose on tensors (torch.testing imports torch.distributed on first use: seconds)."""
    assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    np.testing.assert_allclose(
        got.detach().double().numpy(), want.detach().double().numpy(), rtol=rtol, atol=atol
    )


def weighted_sum(stats, weights):
    return sum((w * s).sum() for w, s in zip(weights, stats[:3], strict=True))


def compare(predictions, full, levels, from_probs, atol_grad):
    weights = torch.randn(3, *predictions.shape[:2], generator=torch.Generator().manual_seed(0))
    fused = map_statistics(predictions, full, levels, from_probs=from_probs, prob_eps=1e-6)
    (grad_fused,) = torch.autograd.grad(weighted_sum(fused, weights), predictions)
    plain = map_statistics_reference(predictions, full, levels, from_probs=from_probs, prob_eps=1e-6)
    (grad_plain,) = torch.autograd.grad(weighted_sum(plain, weights), predictions)
    for got, want in zip(fused, plain, strict=True):
        assert_close(got, want, rtol=1e-5, atol=1e-4)
    assert grad_fused.dtype == predictions.dtype
    assert_close(grad_fused.float(), grad_plain.float(), rtol=1e-3, atol=atol_grad)


@settings(max_examples=20)
@given(
    batch=st.integers(1, 4),
    maps=st.integers(1, 4),
    height=st.integers(1, 20),
    width=st.integers(1, 20),
    from_probs=st.booleans(),
    chunk_log2=st.sampled_from([4, 8, 17]),
    seed=st.integers(0, 1000),
)
def test_fused_statistics_and_gradients_match_autograd(
    batch, maps, height, width, from_probs, chunk_log2, seed
):
    gen = torch.Generator().manual_seed(seed)
    if from_probs:
        predictions = torch.rand(batch, maps, height, width, generator=gen)
        predictions[..., 0, 0] = 0.0  # outside the clamp range: no gradient there
    else:
        predictions = 4 * torch.randn(batch, maps, height, width, generator=gen)
    predictions.requires_grad_(True)
    full = torch.rand(batch, height, width, generator=gen)
    levels = torch.rand(batch, maps - 1, height, width, generator=gen)
    old = terms.CHUNK_ELEMENTS
    terms.CHUNK_ELEMENTS = 1 << chunk_log2  # small chunks: many blocks, several maps per row split
    try:
        compare(predictions, full, levels, from_probs, atol_grad=1e-6)
    finally:
        terms.CHUNK_ELEMENTS = old


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("from_probs", [False, True])
def test_half_precision_inputs_are_computed_in_float32(dtype, from_probs):
    gen = torch.Generator().manual_seed(1)
    base = torch.rand(2, 3, 16, 16, generator=gen) if from_probs else torch.randn(2, 3, 16, 16, generator=gen)
    predictions = base.to(dtype).requires_grad_(True)
    full = (torch.rand(2, 16, 16, generator=gen) > 0.5).float()
    levels = torch.rand(2, 2, 16, 16, generator=gen)
    stats = map_statistics(predictions, full, levels, from_probs=from_probs, prob_eps=1e-6)
    assert all(s.dtype == torch.float32 for s in stats)
    # Same numbers as the float32 computation on the rounded inputs.
    want = map_statistics_reference(
        predictions.detach().float(), full, levels, from_probs=from_probs, prob_eps=1e-6
    )
    for got, ref in zip(stats, want, strict=True):
        assert_close(got, ref, rtol=1e-5, atol=1e-5)
    compare(predictions, full, levels, from_probs, atol_grad=1e-3)


def test_non_contiguous_level_labels_are_read_correctly():
    gen = torch.Generator().manual_seed(2)
    predictions = torch.randn(3, 3, 8, 10, generator=gen, requires_grad=True)
    full = torch.rand(3, 8, 10, generator=gen)
    levels = torch.rand(2, 8, 3, 10, generator=gen).permute(2, 0, 1, 3)  # [B, n, H, W] view, not contiguous
    assert not levels.is_contiguous()
    compare(predictions, full, levels, from_probs=False, atol_grad=1e-6)


def test_blocks_on_the_thread_pool_record_no_graph(monkeypatch):
    monkeypatch.setattr(terms, "CHUNK_ELEMENTS", 64)  # 64 blocks of one 8x8 map
    real_threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # use the pool even on a 1-thread runner
    try:
        check_pool_blocks()
    finally:
        torch.set_num_threads(real_threads)  # run_blocks restores the (faked) 2


def check_pool_blocks():
    gen = torch.Generator().manual_seed(3)
    predictions = torch.randn(16, 4, 8, 8, generator=gen, requires_grad=True)
    full = torch.rand(16, 8, 8, generator=gen)
    levels = torch.rand(16, 3, 8, 8, generator=gen)
    stats = map_statistics(predictions, full, levels, from_probs=False, prob_eps=1e-6)
    assert all(type(s.grad_fn).__name__ == "_FusedMapStatisticsBackward" for s in stats[:3])
    weights = torch.randn(3, 16, 4, generator=gen)
    (grad,) = torch.autograd.grad(weighted_sum(stats, weights), predictions)
    assert grad.grad_fn is None and not grad.requires_grad
    plain = map_statistics_reference(predictions, full, levels, from_probs=False, prob_eps=1e-6)
    (want,) = torch.autograd.grad(weighted_sum(plain, weights), predictions)
    assert_close(grad, want, rtol=1e-4, atol=1e-7)
