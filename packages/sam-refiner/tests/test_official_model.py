"""The released refiner's modules on top of transformers' SAM, and strict loading of the released layout."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from himtok_sam_refiner import (
    OfficialSamModel,
    SamRefiner,
    official_config,
    official_state_dict,
    tiny_sam,
    tiny_sam_config,
)
from himtok_sam_refiner.official_weights import rename_official_key
from transformers.models.sam.modeling_sam import SamMaskDecoder, SamVisionAttention


@pytest.fixture(scope="module")
def model() -> OfficialSamModel:
    return tiny_sam(seed=3, official=True)


@pytest.fixture(scope="module")
def sam_pth(model: OfficialSamModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("release") / "sam.pth"
    torch.save(official_state_dict(model), path)
    return path


def test_official_layout_keys(model: OfficialSamModel) -> None:
    keys = set(official_state_dict(model))
    for key in [
        "image_encoder.patch_embed.proj.weight",
        "image_encoder.blocks.1.attn.rel_pos_h",
        "image_encoder.neck.3.bias",
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
        "prompt_encoder.point_embeddings.1.weight",
        "prompt_encoder.mask_downscaling2.6.weight",
        "mask_decoder.transformer.layers.1.norm4.weight",
        "mask_decoder.transformer.norm_final_attn.bias",
        "mask_decoder.output_upscaling.3.weight",
        "mask_decoder.output_hypernetworks_mlps.3.layers.2.weight",
        "mask_decoder.iou_prediction_head.layers.1.bias",
    ]:
        assert key in keys, key
    assert not any("not_a_point" in k or "no_mask" in k or "point_embeddings.2" in k for k in keys)
    assert "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix" in keys  # stored once, not twice
    assert not any(k.startswith("shared_image_embedding") or "shared_embedding" in k for k in keys)


def test_key_renaming_is_invertible() -> None:
    assert rename_official_key("mask_decoder.iou_prediction_head.layers.0.weight") == (
        "mask_decoder.iou_prediction_head.proj_in.weight"
    )
    assert rename_official_key("mask_decoder.iou_prediction_head.layers.1.weight") == (
        "mask_decoder.iou_prediction_head.layers.0.weight"
    )
    assert rename_official_key("mask_decoder.iou_prediction_head.layers.2.weight") == (
        "mask_decoder.iou_prediction_head.proj_out.weight"
    )
    assert rename_official_key("prompt_encoder.no_mask_embed.weight") is None


def test_config_is_read_from_shapes(model: OfficialSamModel) -> None:
    config = official_config(official_state_dict(model))
    want = tiny_sam_config(official=True)
    for sub in ("vision_config", "prompt_encoder_config", "mask_decoder_config"):
        got_dict, want_dict = getattr(config, sub).to_dict(), getattr(want, sub).to_dict()
        for field in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "image_size",
            "patch_size",
            "window_size",
            "global_attn_indexes",
            "mlp_dim",
            "output_channels",
            "mask_input_channels",
            "num_point_embeddings",
            "hidden_act",
            "num_multimask_outputs",
            "iou_head_depth",
            "iou_head_hidden_dim",
            "layer_norm_eps",
        ):
            if field in want_dict:
                assert got_dict[field] == want_dict[field], (sub, field)


def test_from_official_round_trip(model: OfficialSamModel, sam_pth: Path, synth: SimpleNamespace) -> None:
    loaded = SamRefiner.from_official(sam_pth)
    direct = SamRefiner(model)
    image = synth.image(70, 100, seed=5)
    coarse = [synth.soft_blob(32, (12, 20), 5.0), synth.soft_blob(32, (20, 8), 3.0) > 0.5]
    a = loaded.refine(image, coarse)
    b = direct.refine(image, coarse)
    assert a.prompts == b.prompts == "official"
    for pa, pb in zip(a.probs, b.probs, strict=True):
        np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(a.iou, b.iou)


def _edited(sam_pth: Path, tmp_path: Path, edit) -> Path:
    state = torch.load(sam_pth, weights_only=True)
    edit(state)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    return path


def test_missing_key_is_named(sam_pth: Path, tmp_path: Path) -> None:
    path = _edited(sam_pth, tmp_path, lambda s: s.pop("mask_decoder.iou_token.weight"))
    with pytest.raises(ValueError, match=r"missing keys: mask_decoder\.iou_token\.weight"):
        SamRefiner.from_official(path)


def test_unexpected_key_is_named(sam_pth: Path, tmp_path: Path) -> None:
    path = _edited(
        sam_pth,
        tmp_path,
        lambda s: s.__setitem__("prompt_encoder.not_a_point_embed.weight", torch.zeros(1, 32)),
    )
    with pytest.raises(ValueError, match=r"unexpected keys: prompt_encoder\.not_a_point_embed\.weight"):
        SamRefiner.from_official(path)


def test_shape_mismatch_is_named(sam_pth: Path, tmp_path: Path) -> None:
    path = _edited(
        sam_pth, tmp_path, lambda s: s.__setitem__("mask_decoder.iou_token.weight", torch.zeros(1, 7))
    )
    with pytest.raises(ValueError, match=r"shape mismatches: mask_decoder\.iou_token\.weight"):
        SamRefiner.from_official(path)


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="raw state_dict"):
        SamRefiner.from_official(path)
    torch.save({"model.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not an official HiMTok SAM state_dict"):
        SamRefiner.from_official(path)


def test_rel_pos_uses_the_scaled_query(model: OfficialSamModel) -> None:
    """The official attention equals upstream SAM's with the rel-pos tables scaled by head_dim^-0.5, and differs
    from upstream with the same tables (they are non-zero here)."""
    official = model.vision_encoder.layers[1].attn
    config = model.config.vision_config
    upstream = SamVisionAttention(config, window_size=0)
    upstream.load_state_dict(official.state_dict())
    x = torch.randn(1, 8, 8, config.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = official(x)[0]
        plain = upstream(x)[0]
        upstream.rel_pos_h *= official.scale
        upstream.rel_pos_w *= official.scale
        rescaled = upstream(x)[0]
    assert float((ours - plain).abs().max()) > 1e-3
    torch.testing.assert_close(ours, rescaled, rtol=1e-5, atol=1e-5)


def test_decoder_averages_the_four_outputs(model: OfficialSamModel) -> None:
    decoder = model.mask_decoder
    upstream = SamMaskDecoder(decoder.config)
    upstream.load_state_dict(decoder.state_dict())
    g = torch.Generator().manual_seed(1)
    channels = decoder.config.hidden_size
    args = dict(
        image_embeddings=torch.randn(2, channels, 8, 8, generator=g),
        image_positional_embeddings=torch.randn(2, channels, 8, 8, generator=g),
        sparse_prompt_embeddings=torch.randn(2, 1, 2, channels, generator=g),
        dense_prompt_embeddings=torch.randn(2, channels, 8, 8, generator=g),
    )
    with torch.no_grad():
        masks, iou = decoder(**args, multimask_output=False)
        first, first_iou = upstream(**args, multimask_output=False)
        rest, rest_iou = upstream(**args, multimask_output=True)
    assert masks.shape == (2, 1, 1, 32, 32) and iou.shape == (2, 1, 1)
    torch.testing.assert_close(
        masks, torch.cat([first, rest], dim=2).mean(dim=2, keepdim=True), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(iou, torch.cat([first_iou, rest_iou], dim=2).mean(dim=2, keepdim=True))


def test_prompt_encoder_points(model: OfficialSamModel) -> None:
    encoder = model.prompt_encoder
    points = torch.tensor([[[[10.0, 20.0]]], [[[10.0, 20.0]]]])
    labels = torch.tensor([[[0]], [[1]]])
    masks = torch.zeros(2, 1, 32, 32)
    with torch.no_grad():
        sparse, dense = encoder(points, labels, None, masks)
        position = encoder.shared_embedding(points + 0.5, (128, 128))
    assert sparse.shape == (2, 1, 2, 32) and dense.shape == (2, 32, 8, 8)
    assert torch.count_nonzero(sparse[:, :, 1]) == 0  # the padding point embeds to zero
    torch.testing.assert_close(sparse[0, 0, 0], position[0, 0, 0] + encoder.point_embed[0].weight[0])
    torch.testing.assert_close(sparse[1, 0, 0], position[1, 0, 0] + encoder.point_embed[1].weight[0])
    with pytest.raises(ValueError, match="no box"):
        encoder(points, labels, torch.zeros(2, 1, 4), masks)
    with pytest.raises(ValueError, match="needs a mask prompt"):
        encoder(points, labels, None, None)


def test_needs_two_point_embeddings() -> None:
    with pytest.raises(ValueError, match="2 point embeddings"):
        OfficialSamModel(tiny_sam_config())
