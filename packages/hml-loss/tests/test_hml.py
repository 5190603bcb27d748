"""HierarchicalMaskLoss: values, gradients, reductions, presets and input checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from himtok_hml_loss import HierarchicalMaskLoss, HMLOutput, level_labels
from hypothesis import given, settings
from hypothesis import strategies as st


def assert_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1.3e-6, atol: float = 1e-5) -> None:
    """numpy's assert_allclose on tensors (torch.testing imports torch.distributed on first use: seconds)."""
    assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    np.testing.assert_allclose(
        got.detach().double().numpy(), want.detach().double().numpy(), rtol=rtol, atol=atol
    )


def blob_masks(seed: int, batch: int, size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand(batch, 1, 4, 4, generator=gen)
    return (F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)[:, 0] > 0.5).float()


def all_labels(masks: torch.Tensor, levels: torch.Tensor, schedule: str = "paper") -> torch.Tensor:
    return torch.cat([masks[:, None], level_labels(masks, levels, schedule)], dim=1)


def logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("logit_value", [-1e4, -30.0, 0.0, 30.0, 1e4])
@pytest.mark.parametrize("dice", ["per_sample", "batch"])
def test_finite_for_empty_and_full_masks_and_extreme_logits(fill, logit_value, dice):
    masks = torch.full((2, 16, 16), fill)
    logits = torch.full((2, 4, 16, 16), logit_value, requires_grad=True)
    out = HierarchicalMaskLoss(dice=dice)(logits, masks, torch.tensor([1, 5, 31]))
    out.total.backward()
    assert torch.isfinite(out.total)
    assert torch.isfinite(out.per_level).all()
    assert torch.isfinite(logits.grad).all()


def test_perfect_prediction_of_empty_and_full_masks_costs_about_zero():
    loss = HierarchicalMaskLoss()
    empty = loss(torch.full((2, 1, 8, 8), -40.0), torch.zeros(2, 8, 8), torch.zeros(0, dtype=torch.long))
    full = loss(torch.full((2, 1, 8, 8), 40.0), torch.ones(2, 8, 8), torch.zeros(0, dtype=torch.long))
    assert empty.total.item() == pytest.approx(0.0, abs=1e-6)
    assert full.total.item() == pytest.approx(0.0, abs=1e-6)
    # With the official eps (1e-6) the both-empty Dice is 1 - eps/eps = 0 too: the Dice does not clamp.
    official = HierarchicalMaskLoss.official_lmm()
    probs = torch.zeros(2, 1, 8, 8)
    assert official(
        probs, torch.zeros(2, 8, 8), torch.zeros(0, dtype=torch.long)
    ).dice.item() == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("schedule", ["paper", "official", "resize"])
@pytest.mark.parametrize("from_probs", [False, True])
def test_bce_is_stationary_where_prediction_equals_label(schedule, from_probs):
    gen = torch.Generator().manual_seed(3)
    # Soft masks strictly inside (0, 1) keep every label inside it too, so logit(label) is finite.
    masks = 0.1 + 0.8 * torch.rand(2, 24, 24, generator=gen)
    levels = torch.tensor([2, 9, 30])
    labels = all_labels(masks, levels, schedule)
    # The official schedule peaks at exactly 1: keep logits finite.
    prediction = (labels if from_probs else logit(labels.clamp(1e-6, 1 - 1e-6))).clone().requires_grad_(True)
    loss = HierarchicalMaskLoss(dice_weight=0.0, schedule=schedule, from_probs=from_probs)
    out = loss(prediction, masks, levels)
    (grad,) = torch.autograd.grad(out.total, prediction)
    assert grad.abs().max().item() < 1e-6
    # ... and it is the minimum: any perturbation costs more.
    for scale in (0.5, -0.5, 0.05):
        noise = scale * torch.randn(prediction.shape, generator=gen)
        moved = (labels + 0.1 * noise).clamp(1e-3, 1 - 1e-3) if from_probs else prediction.detach() + noise
        assert loss(moved, masks, levels).total.item() > out.total.item()


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), from_probs=st.booleans(), dice_weight=st.sampled_from([0.0, 0.25, 1.0]))
def test_loss_decreases_as_prediction_moves_toward_the_label(seed, from_probs, dice_weight):
    gen = torch.Generator().manual_seed(seed)
    masks = blob_masks(seed, 2, 16)
    levels = torch.tensor([3, 17])
    # Dice with soft labels is not minimised at p = y, so only the full level (binary) carries Dice here.
    labels = all_labels(masks, levels)
    start = torch.rand(2, 3, 16, 16, generator=gen)
    loss = HierarchicalMaskLoss(dice_weight=dice_weight, from_probs=True)
    full_only = HierarchicalMaskLoss(dice_weight=dice_weight, from_probs=True)
    values = []
    for t in torch.linspace(1.0, 0.0, 6):
        probs = labels + t * (start - labels)
        if dice_weight > 0:
            values.append(full_only(probs[:, :1], masks, torch.zeros(0, dtype=torch.long)).total.item())
        else:
            prediction = probs if from_probs else logit(probs.clamp(1e-4, 1 - 1e-4))
            values.append(
                HierarchicalMaskLoss(dice_weight=0.0, from_probs=from_probs)(
                    prediction, masks, levels
                ).total.item()
            )
    del loss
    assert all(b <= a + 1e-6 for a, b in itertools.pairwise(values))
    assert values[-1] < values[0]


@settings(max_examples=6)
@given(
    seed=st.integers(0, 10_000),
    schedule=st.sampled_from(["paper", "official", "resize"]),
    from_probs=st.booleans(),
)
def test_batched_loss_equals_mean_of_per_sample_losses(seed, schedule, from_probs):
    gen = torch.Generator().manual_seed(seed)
    masks = blob_masks(seed, 3, 20)
    levels = torch.randint(1, 32, (3, 2), generator=gen)
    raw = torch.randn(3, 3, 20, 20, generator=gen)
    predictions = torch.sigmoid(raw) if from_probs else raw
    loss = HierarchicalMaskLoss(dice_weight=0.5, schedule=schedule, from_probs=from_probs)
    batched = loss(predictions, masks, levels)
    alone = [loss(predictions[b : b + 1], masks[b : b + 1], levels[b : b + 1]) for b in range(3)]
    assert_close(batched.total, torch.stack([o.total for o in alone]).mean(), rtol=1e-5, atol=1e-6)
    assert_close(batched.per_level, torch.stack([o.per_level for o in alone]).mean(0), rtol=1e-5, atol=1e-6)


def test_value_matches_direct_formula():
    gen = torch.Generator().manual_seed(5)
    masks = blob_masks(5, 2, 16)
    levels = torch.tensor([4, 20])
    logits = torch.randn(2, 3, 16, 16, generator=gen)
    labels = all_labels(masks, levels)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean((-2, -1)).mean(0)
    p = torch.sigmoid(logits)
    dice = (1 - (2 * (p * labels).sum((-2, -1)) + 1) / (p.sum((-2, -1)) + labels.sum((-2, -1)) + 1)).mean(0)
    out = HierarchicalMaskLoss(bce_weight=2.0, dice_weight=0.5)(logits, masks, levels)
    assert_close(out.bce, bce)
    assert_close(out.dice, dice)
    assert_close(out.per_level, 2.0 * bce + 0.5 * dice)
    assert_close(out.total, out.per_level.sum())
    mean_out = HierarchicalMaskLoss(bce_weight=2.0, dice_weight=0.5, reduction_over_levels="mean")(
        logits, masks, levels
    )
    assert_close(mean_out.total, out.per_level.mean())


def test_official_preset_pools_dice_over_the_batch_on_probabilities():
    loss = HierarchicalMaskLoss.official_lmm()
    assert (loss.bce_weight, loss.dice_weight, loss.dice, loss.schedule, loss.from_probs) == (
        1.0,
        0.25,
        "batch",
        "official",
        True,
    )
    gen = torch.Generator().manual_seed(6)
    masks = blob_masks(6, 3, 16)
    levels = torch.tensor([1, 8, 30])
    probs = torch.rand(3, 4, 16, 16, generator=gen)
    labels = all_labels(masks, levels, "official")
    p = probs.clamp(1e-6, 1 - 1e-6)
    bce = -(labels * p.log() + (1 - labels) * (1 - p).log()).mean((0, 2, 3))
    dice = 1 - (2 * (p * labels).sum((0, 2, 3)) + 1e-6) / (p.sum((0, 2, 3)) + labels.sum((0, 2, 3)) + 1e-6)
    out = loss(probs, masks, levels)
    assert_close(out.bce, bce, rtol=1e-5, atol=1e-6)
    assert_close(out.dice, dice, rtol=1e-5, atol=1e-6)
    assert_close(out.total, (bce + 0.25 * dice).sum(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits_give_float32_loss_and_gradients_in_input_dtype(dtype):
    gen = torch.Generator().manual_seed(8)
    masks = blob_masks(8, 2, 16)
    levels = torch.tensor([2, 11])
    logits32 = torch.randn(2, 3, 16, 16, generator=gen)
    logits = logits32.to(dtype).requires_grad_(True)
    out = HierarchicalMaskLoss()(logits, masks, levels)
    out.total.backward()
    assert out.total.dtype == torch.float32
    assert logits.grad.dtype == dtype
    want = HierarchicalMaskLoss()(logits.detach().float(), masks, levels).total
    assert_close(out.total, want)


def test_autocast_does_not_lower_the_loss_precision():
    masks = blob_masks(9, 2, 16)
    logits = torch.randn(2, 3, 16, 16)
    want = HierarchicalMaskLoss()(logits, masks, torch.tensor([1, 4])).total
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = HierarchicalMaskLoss()(logits, masks, torch.tensor([1, 4])).total
    assert got.dtype == torch.float32
    assert_close(got, want)


def test_levels_are_drawn_when_not_given():
    loss = HierarchicalMaskLoss(n_levels=2)
    masks = blob_masks(1, 2, 8)
    seen = []

    def decode(prefix: torch.Tensor) -> torch.Tensor:
        seen.append(prefix)
        return torch.zeros(prefix.shape[0], prefix.shape[1], 8, 8)

    out_a = loss(decode, masks, generator=torch.Generator().manual_seed(4))
    out_b = loss(decode, masks, generator=torch.Generator().manual_seed(4))
    assert isinstance(out_a, HMLOutput)
    assert out_a.levels.shape == (2,)
    assert torch.equal(out_a.levels, out_b.levels)
    assert torch.equal(seen[0][:, 1:], out_a.levels.expand(2, 2))


@pytest.mark.parametrize(
    ("predictions", "levels", "message"),
    [
        (torch.zeros(2, 3, 8, 8), torch.tensor([1]), r"\[B, n\+1, H, W\]"),
        (torch.zeros(2, 2, 8, 9), torch.tensor([1]), r"\[B, n\+1, H, W\]"),
        (torch.zeros(2, 2, 8, 8, dtype=torch.long), torch.tensor([1]), "floating-point"),
        (torch.zeros(2, 2, 8, 8), torch.tensor([40]), "1..32"),
    ],
)
def test_bad_calls_raise_value_error(predictions, levels, message):
    with pytest.raises(ValueError, match=message):
        HierarchicalMaskLoss()(predictions, torch.zeros(2, 8, 8), levels)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": "box"}, "schedule"),
        ({"dice": "global"}, "dice"),
        ({"reduction_over_levels": "max"}, "reduction_over_levels"),
        ({"bce_weight": -1.0}, "weights"),
        ({"n_levels": 32}, "n_levels"),
    ],
)
def test_bad_settings_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HierarchicalMaskLoss(**kwargs)
