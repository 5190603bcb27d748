"""Dead-code restart: codes that were never used move onto batch vectors and become usable."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from himtok_vq import VectorQuantizer, restart_dead_codes


def clustered_batches(seed: int, n_batches: int = 6) -> list[torch.Tensor]:
    """Inputs in one small cone: with the official tiny init only a few codes are ever nearest."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(12, generator=g)
    return [base + 0.1 * torch.randn(256, 12, generator=g) for _ in range(n_batches)]


@pytest.mark.parametrize("reparam", ["linear", "none", "frozen_base"])
def test_restart_revives_codes_that_were_never_used(reparam):
    torch.manual_seed(0)
    vq = VectorQuantizer(codebook_size=64, dim=12, reparam=reparam, dead_code_threshold=0.5, usage_decay=0.5)
    batches = clustered_batches(1)
    data = torch.cat(batches)
    vq.eval()
    _, first, _ = vq(data)
    never_used = torch.ones(64, dtype=torch.bool)
    never_used[first.unique()] = False
    assert never_used.sum() > 32
    codebook_before = vq.normalized_codebook().detach().clone()
    vq.train()
    for batch in batches:
        vq(batch)
    vq.eval()
    _, after, _ = vq(data)
    assert after.unique().numel() > 4 * first.unique().numel()
    codebook_after = vq.normalized_codebook().detach()
    moved = (codebook_after - codebook_before).abs().amax(dim=1) > 1e-4
    assert moved[never_used].all()
    # The *effective* (projected, normalised) restarted codes sit on real batch vectors.
    nearest = torch.cdist(codebook_after[moved], F.normalize(data, dim=-1)).min(dim=1).values
    assert nearest.max() < 0.05


def test_restart_is_off_without_threshold_and_in_eval_mode():
    torch.manual_seed(0)
    plain = VectorQuantizer(codebook_size=16, dim=12)
    before = plain.embedding.weight.detach().clone()
    plain(torch.randn(32, 12))
    assert torch.equal(before, plain.embedding.weight.detach())
    with_threshold = VectorQuantizer(codebook_size=16, dim=12, dead_code_threshold=10.0).eval()
    before = with_threshold.embedding.weight.detach().clone()
    with_threshold(torch.randn(32, 12))
    assert torch.equal(before, with_threshold.embedding.weight.detach())


def test_restart_function_counts_dead_codes_and_gives_them_a_grace_period():
    torch.manual_seed(0)
    vq = VectorQuantizer(codebook_size=8, dim=12, dead_code_threshold=0.5, usage_decay=0.5)
    counts = torch.tensor([4.0, 4.0, 0, 0, 0, 0, 0, 0])
    vectors = F.normalize(torch.randn(10, 12), dim=-1)
    assert restart_dead_codes(vq, vectors, counts) == 0  # usage 0.5 after one empty batch: not below 0.5
    assert restart_dead_codes(vq, vectors, counts) == 6
    assert torch.equal(vq.usage_ema[2:], torch.ones(6))
    assert restart_dead_codes(vq, vectors) == 0
    with pytest.raises(ValueError, match="dead_code_threshold"):
        restart_dead_codes(VectorQuantizer(codebook_size=8, dim=12), vectors)
    with pytest.raises(ValueError, match="shape"):
        restart_dead_codes(vq, torch.randn(10, 5))


def test_restart_during_gradient_accumulation_keeps_backward_working():
    torch.manual_seed(0)
    vq = VectorQuantizer(codebook_size=32, dim=12, dead_code_threshold=0.9, usage_decay=0.1)
    losses = []
    for batch in clustered_batches(2, n_batches=3):
        z = batch.requires_grad_(True)
        quantized, _, aux = vq(z)
        losses.append(quantized.square().mean() + aux.loss)
    assert vq.usage_ema.max() >= 1.0  # some codes were restarted along the way
    torch.stack(losses).sum().backward()
    assert vq.embedding_proj is not None and vq.embedding_proj.weight.grad is not None
    assert torch.isfinite(vq.embedding_proj.weight.grad).all()
