"""Regression tests: the defects of the official HML (reference §4.8) are absent.

Official code: a level drawn as l keeps l - 2 tokens, l = 1 wraps around to 31 tokens, and only the last
sampled level enters the loss (multiplied by the number of levels).
"""

from __future__ import annotations

import numpy as np
import torch
from himtok_hml_loss import HierarchicalMaskLoss, sample_levels


def assert_close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1.3e-6, atol: float = 1e-5) -> None:
    """numpy's assert_allclose on tensors (torch.testing imports torch.distributed on first use: seconds)."""
    assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    np.testing.assert_allclose(
        got.detach().double().numpy(), want.detach().double().numpy(), rtol=rtol, atol=atol
    )


class RecordingDecoder:
    """A fake de-tokenizer: prediction of row (b, k) is a learnable constant map shifted by its token count."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.calls: list[torch.Tensor] = []
        self.bias = torch.zeros(1, requires_grad=True)

    def __call__(self, prefix_lengths: torch.Tensor) -> torch.Tensor:
        self.calls.append(prefix_lengths.clone())
        b, k = prefix_lengths.shape
        maps = prefix_lengths.float()[:, :, None, None] / 32 - 0.5 + self.bias
        return maps.expand(b, k, self.size, self.size)


def test_level_l_uses_exactly_l_tokens_and_level_1_does_not_wrap():
    decoder = RecordingDecoder()
    masks = torch.zeros(2, 8, 8)
    levels = torch.tensor([1, 2, 31])
    HierarchicalMaskLoss()(decoder, masks, levels)
    (prefix,) = decoder.calls
    assert prefix.dtype == torch.long
    assert prefix.tolist() == [[32, 1, 2, 31], [32, 1, 2, 31]]


def test_per_sample_levels_reach_the_decoder_row_by_row():
    decoder = RecordingDecoder()
    levels = sample_levels(3, generator=torch.Generator().manual_seed(0), batch_size=4)
    HierarchicalMaskLoss()(decoder, torch.zeros(4, 8, 8), levels)
    (prefix,) = decoder.calls
    assert torch.equal(prefix[:, 0], torch.full((4,), 32))
    assert torch.equal(prefix[:, 1:], levels)


def test_every_sampled_level_contributes_to_the_loss():
    gen = torch.Generator().manual_seed(1)
    masks = (torch.rand(2, 16, 16, generator=gen) > 0.5).float()
    levels = torch.tensor([1, 6, 20])
    for loss in (HierarchicalMaskLoss(), HierarchicalMaskLoss.official_lmm()):
        base = torch.rand(2, 4, 16, 16, generator=gen)
        predictions = (base if loss.from_probs else torch.randn(2, 4, 16, 16, generator=gen)).requires_grad_(
            True
        )
        out = loss(predictions, masks, levels)
        assert_close(out.total, out.per_level.sum())
        assert out.per_level.shape == (4,)
        (grad,) = torch.autograd.grad(out.total, predictions)
        for k in range(4):
            assert grad[:, k].abs().sum() > 0, f"level column {k} gets no gradient"
            # Changing only column k changes the total.
            bumped = predictions.detach().clone()
            bumped[:, k] = bumped[:, k] * 0.5 + (0.25 if loss.from_probs else 0.0)
            assert loss(bumped, masks, levels).total.item() != out.total.item()


def test_first_level_is_not_the_only_one_weighted():
    # The official code scores only the last level, times 3. Here, swapping two partial levels' predictions
    # and labels leaves the total unchanged, and scoring them separately adds up.
    gen = torch.Generator().manual_seed(2)
    masks = (torch.rand(2, 16, 16, generator=gen) > 0.5).float()
    logits = torch.randn(2, 3, 16, 16, generator=gen)
    loss = HierarchicalMaskLoss()
    out = loss(logits, masks, torch.tensor([3, 25]))
    swapped = loss(logits[:, [0, 2, 1]], masks, torch.tensor([25, 3]))
    assert_close(out.total, swapped.total)
    first = loss(logits[:, [0, 1]], masks, torch.tensor([3]))
    second = loss(logits[:, [0, 2]], masks, torch.tensor([25]))
    assert_close(out.total, first.total + second.total - first.per_level[0])
