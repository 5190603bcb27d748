"""sample_levels: distribution, distinctness, shapes and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from himtok_hml_loss import level_probabilities, prefix_lengths, sample_levels
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare


def test_probabilities_follow_inverse_offset_law():
    probs = level_probabilities(32, 8).numpy()
    levels = np.arange(1, 32)
    assert probs.shape == (31,)
    np.testing.assert_allclose(probs * (levels + 8), probs[0] * 9, rtol=1e-12)
    assert probs.sum() == pytest.approx(1.0)


def test_first_draw_frequencies_match_law_chi_square():
    gen = torch.Generator().manual_seed(1234)
    levels = sample_levels(3, 32, 8, generator=gen, batch_size=20_000)
    counts = np.bincount(levels[:, 0].numpy(), minlength=32)[1:]
    expected = level_probabilities(32, 8).numpy() * 20_000
    assert chisquare(counts, expected).pvalue > 1e-3
    # The same law rejects a clearly different one (the test has power): uniform levels.
    uniform = np.full(31, 20_000 / 31)
    assert chisquare(counts, uniform).pvalue < 1e-6


def test_single_level_draws_match_law_chi_square():
    gen = torch.Generator().manual_seed(7)
    levels = sample_levels(1, 32, 8, generator=gen, batch_size=20_000)[:, 0]
    counts = np.bincount(levels.numpy(), minlength=32)[1:]
    assert chisquare(counts, level_probabilities(32, 8).numpy() * 20_000).pvalue > 1e-3


def test_second_draw_follows_sampling_without_replacement():
    probs = level_probabilities(32, 8).numpy()
    # P(second = j) = sum_{i != j} p_i p_j / (1 - p_i)
    second = np.array(
        [sum(probs[i] * probs[j] / (1 - probs[i]) for i in range(31) if i != j) for j in range(31)]
    )
    gen = torch.Generator().manual_seed(99)
    levels = sample_levels(3, 32, 8, generator=gen, batch_size=20_000)
    counts = np.bincount(levels[:, 1].numpy(), minlength=32)[1:]
    assert chisquare(counts, second * 20_000).pvalue > 1e-3


@settings(max_examples=30)
@given(
    n_levels=st.integers(0, 8),
    max_len=st.integers(9, 40),
    batch=st.one_of(st.none(), st.integers(1, 5)),
    seed=st.integers(0, 2**31 - 1),
)
def test_levels_are_distinct_partial_levels(n_levels, max_len, batch, seed):
    gen = torch.Generator().manual_seed(seed)
    levels = sample_levels(n_levels, max_len, 8, generator=gen, batch_size=batch)
    assert levels.dtype == torch.long
    assert levels.shape == ((n_levels,) if batch is None else (batch, n_levels))
    rows = levels.reshape(1 if batch is None else batch, n_levels)
    assert bool(((rows >= 1) & (rows < max_len)).all())
    for row in rows.tolist():
        assert len(set(row)) == len(row)


def test_all_partial_levels_when_asking_for_max():
    levels = sample_levels(31, 32, generator=torch.Generator().manual_seed(0))
    assert sorted(levels.tolist()) == list(range(1, 32))


def test_generator_makes_draws_reproducible():
    a = sample_levels(3, generator=torch.Generator().manual_seed(5), batch_size=4)
    b = sample_levels(3, generator=torch.Generator().manual_seed(5), batch_size=4)
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_levels": 32, "max_len": 32}, "distinct partial levels"),
        ({"n_levels": -1}, "non-negative"),
        ({"max_len": 1, "n_levels": 0}, "max_len"),
        ({"offset": -1.0}, "offset"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_levels(**kwargs)


def test_prefix_lengths_put_full_level_first():
    shared = prefix_lengths(torch.tensor([3, 1]), batch_size=2, max_len=32)
    assert shared.tolist() == [[32, 3, 1], [32, 3, 1]]
    per_sample = prefix_lengths(torch.tensor([[5], [9]]), batch_size=2, max_len=16)
    assert per_sample.tolist() == [[16, 5], [16, 9]]
