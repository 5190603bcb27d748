"""The light pixel head (patch un-embedding + upsampling conv path) and the continuous warm-up forward."""

from __future__ import annotations

import pytest
import torch
from himtok_mask_tokenizer import MaskTokenizer
from himtok_mask_tokenizer.modeling import LightPixelHead, LinearPixelHead


def test_a_new_light_head_starts_as_the_linear_head() -> None:
    torch.manual_seed(0)
    light = LightPixelHead(z_channels=6, upscale=4, hidden_channels=16)
    linear = LinearPixelHead(z_channels=6, patch_size=4)
    linear.load_state_dict({"proj.weight": light.proj.weight, "proj.bias": light.proj.bias})
    grid = torch.randn(3, 6, 5, 5)
    assert light(grid).shape == (3, 1, 20, 20)
    assert torch.equal(light(grid), linear(grid))


def test_the_conv_path_draws_across_patch_borders() -> None:
    torch.manual_seed(0)
    head = LightPixelHead(z_channels=4, upscale=4, hidden_channels=8)
    torch.nn.init.normal_(head.conv_out.weight)
    grid = torch.zeros(1, 4, 3, 3)
    grid[0, :, 1, 1] = 1.0  # one active cell
    out = head(grid)[0, 0]
    linear_only = torch.nn.functional.pixel_shuffle(head.proj(grid), 4)[0, 0]
    # The linear path is piecewise per 4x4 patch; the conv path spreads the active cell into its neighbours.
    assert not torch.allclose(out[0:4, 4:8], linear_only[0:4, 4:8])


def test_light_head_tokenizer_round_trip_and_gradients(make_config) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = MaskTokenizer(make_config(pixel_head="light"))
    masks = (torch.rand(2, 256, 256) > 0.5).float()
    tokens = model.encode(masks)
    assert tokens.shape == (2, 32)
    assert model.decode(tokens[:, :5]).shape == (2, 256, 256)
    out = model(masks, torch.tensor([4, 9]))
    out.logits.sum().backward()
    assert model.pixel_decoder.conv_out.weight.grad is not None
    assert float(model.pixel_decoder.conv_out.weight.grad.abs().sum()) > 0


def test_light_head_needs_a_power_of_two_upscale(make_config) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="power of two"):
        make_config(pixel_head="light", internal_size=48, patch_size=12)  # 4x4 grid of 12-pixel cells
    with pytest.raises(ValueError, match="power of two"):
        LightPixelHead(z_channels=4, upscale=3, hidden_channels=8)


def test_continuous_warm_up_decodes_normalised_latents_and_still_reports_codes(make_config) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = MaskTokenizer(make_config(pixel_head="light"))
    masks = (torch.rand(2, 256, 256) > 0.5).float()
    torch.manual_seed(1)
    quantized = model(masks, torch.tensor([8]), quantize=True)
    torch.manual_seed(1)
    continuous = model(masks, torch.tensor([8]), quantize=False)
    assert torch.equal(quantized.tokens, continuous.tokens)
    assert torch.allclose(quantized.vq_aux.loss, continuous.vq_aux.loss)
    assert not torch.allclose(quantized.logits, continuous.logits)
    # The continuous path decodes the unit-norm latents themselves.
    latents = torch.nn.functional.normalize(model.encode_latents(model.preprocess(masks)[0]), dim=-1)
    embedded = model.decoder.decoder_embed(latents)
    want = model._logits(embedded)
    assert torch.allclose(continuous.logits[:, 0], want, atol=1e-5)


def test_conv_stem_embeds_patches_across_their_borders(make_config) -> None:  # type: ignore[no-untyped-def]
    from himtok_mask_tokenizer.modeling import ConvStem

    torch.manual_seed(0)
    stem = ConvStem(1, 24, 8)
    assert [conv.out_channels for conv in stem.layers] == [16, 24, 24]
    x = torch.zeros(1, 1, 32, 32)
    assert stem(x).shape == (1, 24, 4, 4)
    # A pixel just left of a patch border changes the embedding of the patch to its right too.
    bumped = x.clone()
    bumped[0, 0, 3, 7] = 1.0
    with torch.no_grad():
        delta = (stem(bumped) - stem(x)).abs()[0].sum(0)
    assert float(delta[0, 1]) > 0
    with pytest.raises(ValueError, match="power of two"):
        ConvStem(1, 24, 6)
    model = MaskTokenizer(make_config(pixel_head="light", encoder_stem="conv"))
    assert model.encode(torch.zeros(1, 64, 64)).shape == (1, 32)
    with pytest.raises(ValueError, match="encoder_stem"):
        make_config(encoder_stem="cnn")
