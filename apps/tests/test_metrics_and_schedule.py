"""IoU, boundary IoU, code statistics and the learning-rate schedule."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from himtok_apps.codebook import code_report, restore_code_stats
from himtok_apps.metrics import boundary_iou, bounding_box_iou, iou, resolution_only_iou
from himtok_apps.training.schedule import WarmupCosine
from himtok_vq import CodebookStats
from hypothesis import given, settings
from hypothesis import strategies as st


def random_masks(seed: int, n: int = 3, size: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, size, size, generator=generator)


@settings(max_examples=30)
@given(seed=st.integers(0, 10_000))
def test_ious_are_symmetric_bounded_and_one_on_identity(seed: int) -> None:
    a, b = random_masks(seed), random_masks(seed + 1)
    for metric in (iou, boundary_iou):
        assert torch.allclose(metric(a, b), metric(b, a))
        values = metric(a, b)
        assert ((values >= 0) & (values <= 1)).all()
        assert torch.equal(metric(a, a), torch.ones(3))


def test_iou_known_values() -> None:
    a = torch.zeros(1, 10, 10)
    b = torch.zeros(1, 10, 10)
    a[0, :, :5] = 1
    b[0, :, 2:7] = 1  # overlap 3 columns, union 7
    assert iou(a, b).item() == pytest.approx(3 / 7)
    assert iou(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)).item() == 1.0
    assert iou(a, torch.zeros(1, 10, 10)).item() == 0.0


def test_boundary_iou_punishes_edge_errors_more_than_iou() -> None:
    target = torch.zeros(1, 128, 128)
    target[0, 20:108, 20:108] = 1
    shifted = torch.roll(target, shifts=3, dims=2)
    assert boundary_iou(shifted, target).item() < iou(shifted, target).item() - 0.1


def test_ious_reject_bad_shapes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        iou(torch.zeros(1, 4, 4), torch.zeros(1, 5, 5))
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        boundary_iou(torch.zeros(4, 4), torch.zeros(4, 4))


def test_code_report_usage_and_entropy() -> None:
    stats = CodebookStats(8, num_positions=2)
    stats.update(torch.tensor([[0, 1], [0, 2], [0, 3], [0, 4]]))
    summary = code_report(stats)
    assert summary["codes_used"] == 5 and summary["usage"] == 5 / 8
    assert summary["entropy_bits"] == [0.0, 2.0]
    assert summary["max_entropy_bits"] == 3.0
    # 8 draws: code 0 four times, codes 1..4 once each -> entropy 2 bits, perplexity 4
    assert summary["perplexity"] == pytest.approx(4.0)
    stats.reset()
    assert code_report(stats)["codes_used"] == 0


def test_code_stats_restore_reads_old_float_checkpoints() -> None:
    old = torch.zeros(2, 8, dtype=torch.float64)
    old[0, 3], old[1, 5] = 2.0, 1.0
    stats = CodebookStats(8, num_positions=2)
    restore_code_stats(stats, old)
    assert stats.counts.tolist() == [0, 0, 0, 2, 0, 1, 0, 0]
    again = CodebookStats(8, num_positions=2)
    restore_code_stats(again, stats.state_dict())
    assert torch.equal(again.position_counts, stats.position_counts)


def schedule(**kwargs: float) -> WarmupCosine:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    settings = {"peak_lr": 1.0, "max_steps": 100, "warmup_steps": 10, "min_ratio": 0.1, **kwargs}
    return WarmupCosine(optimizer, **settings)  # type: ignore[arg-type]


def test_warmup_then_cosine_down_to_the_floor() -> None:
    sched = schedule()
    lrs = [sched.apply(step) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in itertools.pairwise(lrs[:10]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert sched.factor(100) == pytest.approx(0.1)
    assert sched.optimizer.param_groups[0]["lr"] == lrs[-1]


def test_time_budget_drives_the_decay() -> None:
    sched = schedule(budget_s=60.0)
    assert sched.factor(20, elapsed_s=60.0) == pytest.approx(0.1)
    assert sched.factor(20, elapsed_s=0.0) > sched.factor(20, elapsed_s=30.0)
    midway = sched.factor(55, elapsed_s=0.0)
    assert midway == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), width=st.integers(1, 6))
def test_inner_boundary_equals_a_square_max_filter(seed: int, width: int) -> None:
    import torch.nn.functional as F
    from himtok_apps.metrics import inner_boundary

    masks = random_masks(seed, n=2, size=24) > 0.3
    padded = F.pad((~masks).float()[:, None], (width,) * 4, value=1.0)
    reference = masks & (F.max_pool2d(padded, 2 * width + 1, stride=1)[:, 0] > 0)
    assert torch.equal(inner_boundary(masks, width), reference)


@settings(max_examples=30)
@given(st.integers(0, 2**32 - 1))
def test_bounding_box_iou_is_mask_area_over_box_area(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    masks = (torch.rand(3, 16, 16, generator=generator) > 0.7).float()
    masks[0] = 0.0  # an empty mask scores 1 (both empty)
    got = bounding_box_iou(masks)
    assert got[0] == 1.0
    for mask, value in zip(masks[1:], got[1:], strict=True):
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert float(value) == pytest.approx(float(mask.sum() / box))


def test_resolution_only_iou_keeps_blobs_loses_thin_lines_and_is_exact_at_full_size() -> None:
    masks = torch.zeros(2, 64, 64)
    masks[0, 16:48, 8:40] = 1.0  # a blob: only the corners blur
    masks[1, 30, 5:60] = 1.0  # a one-pixel line vanishes in 8x8 cells
    coarse = resolution_only_iou(masks, 8)
    assert float(coarse[0]) > 0.95 and float(coarse[1]) < 0.5
    assert resolution_only_iou(masks, 64).tolist() == [1.0, 1.0]


def test_parameter_groups_scale_the_learning_rate_by_prefix() -> None:
    from himtok_apps.training.loop import parameter_groups
    from himtok_apps.training.schedule import WarmupCosine

    model = torch.nn.ModuleDict({"body": torch.nn.Linear(3, 3), "head": torch.nn.Linear(3, 1)})
    groups = parameter_groups(model, 0.1, {"head.": 0.25})
    optimizer = torch.optim.AdamW(groups, lr=1.0)
    WarmupCosine(optimizer, peak_lr=2.0, max_steps=10).apply(0)
    by_param = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    assert by_param[id(model["body"].weight)]["lr"] == 2.0
    assert by_param[id(model["head"].weight)]["lr"] == 0.5
    assert by_param[id(model["head"].bias)]["weight_decay"] == 0.0
    assert by_param[id(model["head"].weight)]["weight_decay"] == 0.1
    assert sum(len(g["params"]) for g in groups) == 4
