"""The tokenizer's training path and the hierarchical mask loss, composed as the stage-1 trainer composes them."""

from __future__ import annotations

import numpy as np
import torch
from himtok_hml_loss import HierarchicalMaskLoss, sample_levels
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig


def disk_masks(batch: int, size: int = 256) -> torch.Tensor:
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((batch, size, size), dtype=np.float32)
    for i in range(batch):
        cy, cx, r = 80 + 20 * i, 120 - 15 * i, 40 + 10 * i
        out[i] = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r**2).astype(np.float32)
    return torch.from_numpy(out)


def test_hml_over_the_tokenizer_forward_reaches_encoder_and_decoder():
    torch.manual_seed(0)
    model = MaskTokenizer(MaskTokenizerConfig.preset("tiny"))
    masks = disk_masks(2)
    levels = sample_levels(n_levels=3, batch_size=2, generator=torch.Generator().manual_seed(0))
    out = model(masks, levels)
    assert out.logits.shape == (2, 4, 256, 256)
    assert torch.equal(out.lengths[:, 1:], levels) and bool((out.lengths[:, 0] == 32).all())
    loss = HierarchicalMaskLoss()(out.logits, out.targets, levels)
    (loss.total + out.vq_aux.loss).backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    encoder = [g for n, g in grads.items() if n.startswith("encoder.") and g is not None]
    decoder = [g for n, g in grads.items() if n.startswith("decoder.") and g is not None]
    assert encoder and any(g.abs().sum() > 0 for g in encoder)  # straight-through reaches the encoder
    assert decoder and any(g.abs().sum() > 0 for g in decoder)
    assert torch.isfinite(loss.per_level).all() and loss.per_level.shape == (4,)


def test_a_few_adamw_steps_lower_the_hierarchical_loss_on_fixed_masks():
    torch.manual_seed(0)
    model = MaskTokenizer(MaskTokenizerConfig.preset("tiny"))
    hml = HierarchicalMaskLoss()
    masks = disk_masks(4)
    levels = torch.tensor([[1, 4, 16]] * 4)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for _ in range(10):
        out = model(masks, levels)
        loss = hml(out.logits, out.targets, levels).total + out.vq_aux.loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
    assert history[-1] < 0.92 * history[0]
