"""The accelerator code paths: the CUDA-side label product and block plan, checked on CPU; a CUDA run when
one is available."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from himtok_hml_loss import HierarchicalMaskLoss, level_labels
from himtok_hml_loss.labels import _apply_shared
from himtok_hml_loss.operators import level_operators
from himtok_hml_loss.terms import _blocks


@pytest.mark.parametrize("schedule", ["paper", "official", "resize"])
def test_single_gemm_path_equals_banded_cpu_path(schedule):
    masks = (torch.rand(3, 40, 24, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    levels = torch.tensor([1, 9, 30])
    ops_h = level_operators(schedule, 40, 32, torch.device("cpu"))
    ops_w = level_operators(schedule, 24, 32, torch.device("cpu"))
    got = _apply_shared(ops_h[levels], ops_w[levels], masks)
    if schedule == "official":
        got = got / got.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    want = level_labels(masks, levels, schedule)
    np.testing.assert_allclose(got.clamp(0, 1).numpy(), want.numpy(), atol=1e-6)


def test_accelerators_get_one_block_and_cpu_gets_cache_sized_blocks():
    assert _blocks(64, 4, 256 * 256, torch.device("cuda")) == [(0, 64, 0, 4)]
    cpu = _blocks(64, 4, 256 * 256, torch.device("cpu"))
    assert len(cpu) > 1
    covered = {(b, k) for b0, b1, k0, k1 in cpu for b in range(b0, b1) for k in range(k0, k1)}
    assert covered == {(b, k) for b in range(64) for k in range(4)}
    assert sum((b1 - b0) * (k1 - k0) for b0, b1, k0, k1 in cpu) == 64 * 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("per_sample", [False, True])
def test_cuda_matches_cpu(per_sample):
    gen = torch.Generator().manual_seed(1)
    masks = (torch.rand(4, 64, 64, generator=gen) > 0.5).float()
    levels = torch.randint(1, 32, (4, 3), generator=gen) if per_sample else torch.tensor([1, 5, 20])
    logits = torch.randn(4, 4, 64, 64, generator=gen)
    loss = HierarchicalMaskLoss()
    cpu_logits = logits.clone().requires_grad_(True)
    want = loss(cpu_logits, masks, levels)
    want.total.backward()
    gpu_logits = logits.cuda().to(torch.bfloat16).requires_grad_(True)
    got = loss(gpu_logits, masks.cuda(), levels.cuda())
    got.total.backward()
    assert got.total.dtype == torch.float32
    np.testing.assert_allclose(
        got.total.item(), loss(logits.bfloat16().float(), masks, levels).total.item(), rtol=1e-4
    )
    assert gpu_logits.grad.dtype == torch.bfloat16
    assert torch.isfinite(gpu_logits.grad).all()
