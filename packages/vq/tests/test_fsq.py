"""FSQ: a fixed grid of exactly 1024 codes with the VectorQuantizer API."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from himtok_vq import FSQ
from hypothesis import given
from hypothesis import strategies as st


def test_default_levels_give_exactly_1024_distinct_reachable_codes():
    fsq = FSQ(levels=(8, 8, 4, 4))
    assert fsq.codebook_size == 1024
    codes = fsq.indices_to_codes(torch.arange(1024))
    assert len({tuple(c.tolist()) for c in codes}) == 1024
    assert codes.min() >= -1 and codes.max() <= 1
    # Invert the tanh bound at each code's grid value: that input must quantize to the code itself.
    levels = torch.tensor([8.0, 8.0, 4.0, 4.0])
    half = (levels - 1) * (1 + fsq.eps) / 2
    offset = torch.where(levels % 2 == 0, 0.5, 0.0)
    preimage = torch.atanh((codes * (levels // 2) + offset) / half) - torch.atanh(offset / half)
    quantized, indices, aux = fsq(preimage)
    assert torch.equal(indices, torch.arange(1024))
    assert torch.equal(quantized, codes)
    assert aux.usage.item() == 1.0
    assert aux.perplexity.item() == pytest.approx(1024, rel=1e-4)


@given(
    seed=st.integers(0, 2**16),
    scale=st.floats(0.1, 10.0),
    levels=st.lists(st.integers(2, 9), min_size=1, max_size=5),
)
def test_indices_round_trip_and_quantized_equals_the_grid_code(seed, scale, levels):
    fsq = FSQ(levels=levels).eval()
    z = torch.randn(3, 21, len(levels), generator=torch.Generator().manual_seed(seed)) * scale
    quantized, indices, aux = fsq(z)
    assert indices.shape == (3, 21) and indices.dtype == torch.int64
    assert int(indices.min()) >= 0 and int(indices.max()) < fsq.codebook_size
    assert torch.equal(fsq.indices_to_codes(indices), quantized)
    assert torch.equal(fsq.codes_to_indices(quantized), indices)
    assert aux.loss.item() == 0.0


@given(seed=st.integers(0, 2**16))
def test_the_code_is_the_nearest_grid_point_of_the_bounded_input(seed):
    fsq = FSQ()
    z = torch.randn(50, 4, generator=torch.Generator().manual_seed(seed)) * 2
    _, indices, _ = fsq(z)
    grid = fsq.indices_to_codes(torch.arange(1024)) * torch.tensor([4.0, 4.0, 2.0, 2.0])  # unscaled integers
    bounded = fsq.bound(z)
    distances = torch.cdist(bounded.double(), grid.double())
    chosen = distances.gather(1, indices[:, None]).squeeze(1)
    assert torch.all(chosen <= distances.min(dim=1).values + 1e-9)


def test_projection_straight_through_gradient_and_dtype():
    fsq = FSQ(dim=12)
    z = torch.randn(2, 32, 12, requires_grad=True)
    quantized, indices, _ = fsq(z)
    assert quantized.shape == z.shape and indices.shape == (2, 32)
    quantized.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert fsq.project_in.weight.grad.abs().sum() > 0  # type: ignore[union-attr]
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        same, again, _ = fsq(z.detach())  # float32 input: autocast must not change the result
        low, _, _ = fsq(z.detach().to(torch.bfloat16))
    assert torch.equal(again, indices) and torch.equal(same, quantized.detach())
    assert low.dtype == torch.bfloat16


def test_probs_to_codes_of_one_hot_is_the_code():
    fsq = FSQ(dim=12)
    codes = fsq.probs_to_codes(F.one_hot(torch.tensor([5, 700]), 1024).float())
    torch.testing.assert_close(codes, fsq.indices_to_codes(torch.tensor([5, 700])), rtol=0, atol=1e-6)


def test_fsq_rejects_bad_levels_input_and_indices():
    with pytest.raises(ValueError, match="levels"):
        FSQ(levels=(8, 1))
    with pytest.raises(ValueError, match="levels"):
        FSQ(levels=())
    with pytest.raises(ValueError, match="shape"):
        FSQ()(torch.randn(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        FSQ()(torch.full((2, 4), float("nan")))
    with pytest.raises(ValueError, match=r"\[0, 1024\)"):
        FSQ().indices_to_codes(torch.tensor([1024]))
