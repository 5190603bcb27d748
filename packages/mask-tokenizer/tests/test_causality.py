"""Causality of the codes: in the causal layout code k depends only on latent tokens 0..k."""

from __future__ import annotations

import pytest
import torch
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig
from hypothesis import given, settings
from hypothesis import strategies as st


def _latents_after_perturbing(model: MaskTokenizer, masks: torch.Tensor, start: int, seed: int):
    """Latents and codes before and after adding noise to the latent-token parameters of positions >= start."""
    with torch.no_grad():
        targets, _ = model.preprocess(masks)
        before = model.encode_latents(targets)
        saved = model.latent_tokens.detach().clone()
        noise = torch.randn(saved[start:].shape, generator=torch.Generator().manual_seed(seed))
        model.latent_tokens[start:] += 3.0 * noise
        try:
            after = model.encode_latents(targets)
        finally:
            model.latent_tokens.copy_(saved)
    codes_before = model.quantize.nearest(before)[2].view(before.shape[:2])
    codes_after = model.quantize.nearest(after)[2].view(after.shape[:2])
    return before, after, codes_before, codes_after


@pytest.fixture(scope="module")
def masks(make_masks) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return make_masks(3, seed=11)


@settings(max_examples=15)
@given(start=st.integers(1, 31), seed=st.integers(0, 2**16))
def test_causal_codes_ignore_later_latent_tokens(
    micro_model: MaskTokenizer, masks: torch.Tensor, start: int, seed: int
) -> None:
    before, after, codes_before, codes_after = _latents_after_perturbing(micro_model, masks, start, seed)
    assert torch.equal(codes_before[:, :start], codes_after[:, :start])
    torch.testing.assert_close(before[:, :start], after[:, :start], atol=1e-6, rtol=0)
    # The perturbation is real: the positions it touched do move.
    assert (before[:, start:] - after[:, start:]).abs().max() > 1e-3


def test_official_layout_is_not_causal(make_config, masks: torch.Tensor) -> None:  # type: ignore[no-untyped-def]
    """The legacy re-view mixes every latent into every code: perturbing only the last latent token moves
    the latents of every position, and some earlier code changes."""
    torch.manual_seed(3)
    model = MaskTokenizer(make_config(layout="official")).eval()
    before, after, codes_before, codes_after = _latents_after_perturbing(model, masks, 31, seed=5)
    assert ((before[:, :31] - after[:, :31]).abs().amax(dim=(0, 2)) > 1e-3).all()
    assert not torch.equal(codes_before[:, :31], codes_after[:, :31])


def test_layouts_share_weights_and_differ_in_the_projection(make_config, masks: torch.Tensor) -> None:  # type: ignore[no-untyped-def]
    """Both layouts have the same parameters; the causal one applies the 1x1 ``conv_out`` to each latent,
    the official one to the re-viewed buffer."""
    torch.manual_seed(4)
    causal = MaskTokenizer(make_config(layout="causal")).eval()
    official = MaskTokenizer(make_config(layout="official")).eval()
    official.load_state_dict(causal.state_dict())
    hidden = torch.randn(2, 32, causal.config.encoder_width)
    conv = causal.encoder.conv_out
    with torch.no_grad():
        per_latent = conv(hidden.transpose(1, 2).unsqueeze(-1)).squeeze(-1).transpose(1, 2)
        re_viewed = conv(hidden.reshape(2, -1, 32, 1)).reshape(2, -1, 32).transpose(1, 2)
        torch.testing.assert_close(causal.encoder.project(hidden), per_latent)
        torch.testing.assert_close(official.encoder.project(hidden), re_viewed)
    assert not torch.allclose(per_latent, re_viewed)
    assert MaskTokenizerConfig.preset("tiny").layout == "causal"
