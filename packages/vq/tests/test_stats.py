"""CodebookStats: running usage per code and per position, entropy in bits, perplexity, dead codes."""

from __future__ import annotations

import math

import pytest
import torch
from himtok_vq import CodebookStats
from hypothesis import given
from hypothesis import strategies as st


def test_counts_usage_entropy_and_dead_codes():
    stats = CodebookStats(codebook_size=8, num_positions=2)
    stats.update(torch.tensor([[0, 1], [0, 1]]))
    stats.update(torch.tensor([[2, 1]]))
    summary = stats.summary()
    assert stats.total == 6 and summary["total"] == 6
    assert torch.equal(stats.counts, torch.tensor([2, 3, 1, 0, 0, 0, 0, 0]))
    assert summary["usage"] == pytest.approx(3 / 8)
    assert summary["dead_codes"] == 5
    assert stats.dead_codes(min_count=2) == 6
    probs = torch.tensor([2, 3, 1]) / 6
    assert summary["entropy_bits"] == pytest.approx(float(-(probs * probs.log2()).sum()))
    assert summary["perplexity"] == pytest.approx(2 ** summary["entropy_bits"])
    # Position 0 saw codes {0, 0, 2}; position 1 always code 1 (zero entropy).
    p0 = torch.tensor([2, 1]) / 3
    per_position = stats.position_entropy_bits()
    assert per_position[0].item() == pytest.approx(float(-(p0 * p0.log2()).sum()))
    assert per_position[1].item() == pytest.approx(0.0)
    assert summary["position_entropy_bits_min"] == pytest.approx(0.0)
    torch.testing.assert_close(stats.position_usage(), torch.tensor([2 / 8, 1 / 8], dtype=torch.float64))
    stats.reset()
    assert stats.total == 0 and stats.dead_codes() == 8


@given(k=st.integers(1, 64), repeats=st.integers(1, 5))
def test_uniform_usage_reaches_maximum_entropy(k, repeats):
    stats = CodebookStats(codebook_size=k)
    stats.update(torch.arange(k).repeat(repeats))
    assert stats.entropy_bits() == pytest.approx(math.log2(k), abs=1e-9)
    assert stats.perplexity() == pytest.approx(k)
    assert stats.usage() == 1.0 and stats.dead_codes() == 0


@given(seed=st.integers(0, 2**16), length=st.integers(1, 6), batches=st.integers(1, 4))
def test_counts_match_a_histogram_and_positions_add_up(seed, length, batches):
    g = torch.Generator().manual_seed(seed)
    stats = CodebookStats(codebook_size=10, num_positions=6)
    seen = []
    for _ in range(batches):
        indices = torch.randint(0, 10, (5, length), generator=g)
        stats.update(indices)
        seen.append(indices)
    everything = torch.cat(seen)
    assert torch.equal(stats.counts, torch.bincount(everything.reshape(-1), minlength=10))
    assert stats.position_counts is not None
    assert torch.equal(stats.position_counts.sum(dim=0), stats.counts)
    for t in range(length):
        assert torch.equal(stats.position_counts[t], torch.bincount(everything[:, t], minlength=10))
    assert stats.position_counts[length:].sum() == 0  # shorter sequences leave later positions alone


def test_state_dict_round_trip_and_sync_without_distributed_is_a_copy():
    stats = CodebookStats(codebook_size=4, num_positions=2)
    stats.update(torch.tensor([[0, 3], [1, 3]]))
    other = CodebookStats(codebook_size=4, num_positions=2)
    other.load_state_dict(stats.state_dict())
    assert torch.equal(other.counts, stats.counts)
    assert other.position_counts is not None and stats.position_counts is not None
    assert torch.equal(other.position_counts, stats.position_counts)
    synced = stats.synced()
    assert torch.equal(synced.counts, stats.counts) and synced.counts is not stats.counts
    with pytest.raises(ValueError, match="keys"):
        CodebookStats(codebook_size=4).load_state_dict(stats.state_dict())


def test_stats_reject_bad_indices_and_positions():
    stats = CodebookStats(codebook_size=4, num_positions=3)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        stats.update(torch.tensor([[0, 1, 4]]))
    with pytest.raises(ValueError, match="integer"):
        stats.update(torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="num_positions"):
        stats.update(torch.tensor([[0, 1, 2, 3]]))
    with pytest.raises(ValueError, match="num_positions"):
        CodebookStats(codebook_size=4).position_entropy_bits()
