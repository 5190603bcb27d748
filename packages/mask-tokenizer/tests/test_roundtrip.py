"""Round trips: encode/decode shapes and ranges, determinism, batching, sizes, checkpoints, training forward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from himtok_mask_tokenizer import MaskTokenizer, MaskTransform, TokenizerOutput
from himtok_mask_tokenizer.modeling.reference import with_reference_attention
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file


@pytest.mark.parametrize("length", [1, 7, 32])
def test_decode_of_encode_shape_dtype_range(micro_model: MaskTokenizer, make_masks, length: int) -> None:  # type: ignore[no-untyped-def]
    masks = make_masks(3)
    tokens = micro_model.encode(masks)
    assert tokens.shape == (3, 32) and tokens.dtype == torch.long
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 1024
    with torch.no_grad():
        probs = micro_model.decode(tokens[:, :length])
        logits = micro_model.decode_logits(tokens[:, :length])
    assert probs.shape == (3, 256, 256) and probs.dtype == torch.float32
    assert float(probs.min()) >= 0.0 and float(probs.max()) <= 1.0
    torch.testing.assert_close(torch.sigmoid(logits), probs, atol=0, rtol=0)


def test_official_conv_head_round_trip(micro_official_model: MaskTokenizer, make_masks) -> None:  # type: ignore[no-untyped-def]
    masks = make_masks(2)
    tokens = micro_official_model.encode(masks)
    with torch.no_grad():
        probs = micro_official_model.decode(tokens[:, :5])
    assert probs.shape == (2, 256, 256)
    assert float(probs.min()) >= 0.0 and float(probs.max()) <= 1.0


def test_encode_is_deterministic_and_side_effect_free(make_config, make_masks) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = MaskTokenizer(make_config(dead_code_threshold=10.0)).train()  # would restart codes in forward
    masks = make_masks(4, seed=2)
    codebook = model.quantize.embedding.weight.detach().clone()
    first, second = model.encode(masks), model.encode(masks)
    assert torch.equal(first, second)
    assert torch.equal(codebook, model.quantize.embedding.weight)


def test_item_alone_equals_item_in_batch(micro_model: MaskTokenizer, make_masks) -> None:  # type: ignore[no-untyped-def]
    batch = make_masks(8, seed=3)
    tokens = micro_model.encode(batch)
    for index in (0, 5):
        alone = micro_model.encode(batch[index])
        assert torch.equal(alone[0], tokens[index])
        with torch.no_grad():
            torch.testing.assert_close(
                micro_model.decode(tokens[index : index + 1, :9])[0],
                micro_model.decode(tokens[:, :9])[index],
                atol=1e-5,
                rtol=0,
            )


def test_input_forms_give_the_same_tokens(micro_model: MaskTokenizer, make_masks) -> None:  # type: ignore[no-untyped-def]
    masks = make_masks(2, seed=4)
    reference = micro_model.encode(masks)
    forms = [
        masks.bool(),
        (masks * 255).to(torch.uint8),
        masks.unsqueeze(1),
        masks.numpy(),
        masks.numpy().astype(bool),
        masks.double(),
    ]
    for form in forms:
        assert torch.equal(micro_model.encode(form), reference)
    assert torch.equal(micro_model.encode(masks[1]), reference[1:])


@settings(max_examples=10)
@given(height=st.integers(20, 300), width=st.integers(20, 300))
def test_size_round_trip_for_any_shape(micro_model: MaskTokenizer, height: int, width: int) -> None:
    mask = torch.zeros(height, width)
    mask[height // 4 : 3 * height // 4, width // 5 : width // 2] = 1
    tokens = micro_model.encode(mask)
    with torch.no_grad():
        probs = micro_model.decode(tokens, size=(height, width))
        logits = micro_model.decode_logits(tokens, size=(height, width))
    assert probs.shape == (1, height, width)
    torch.testing.assert_close(torch.sigmoid(logits), probs)


@settings(max_examples=20)
@given(height=st.integers(8, 400), width=st.integers(8, 400), mode=st.sampled_from(["stretch", "pad"]))
def test_mask_transform_inverts_to_the_original_size(height: int, width: int, mode: str) -> None:
    """A smooth ramp survives apply + invert: the transform is the recorded, invertible resize."""
    ys = torch.linspace(0, 1, height).unsqueeze(1)
    xs = torch.linspace(0, 1, width).unsqueeze(0)
    ramp = ((ys + xs) / 2).unsqueeze(0)
    transform = MaskTransform((height, width), 256, mode)
    square = transform.apply(ramp)
    assert square.shape == (1, 256, 256)
    assert float(square.min()) >= 0 and float(square.max()) <= 1
    back = transform.invert(square)
    assert back.shape == (1, height, width)
    # With "pad", the last rows/columns blend with the zero padding when resampled: compare inside.
    inner = (slice(None), slice(0, height - 2), slice(0, width - 2)) if mode == "pad" else (slice(None),) * 3
    assert float((back - ramp)[inner].abs().max()) < 0.05
    if mode == "pad" and height != width:
        # the padding is zero: the far corner of the square is empty
        assert float(square[0, -1, -1]) == 0.0


def test_reference_attention_path_computes_the_same_function(
    micro_official_model: MaskTokenizer, make_masks
) -> None:  # type: ignore[no-untyped-def]
    reference = with_reference_attention(micro_official_model)
    masks = make_masks(2, seed=6)
    tokens = micro_official_model.encode(masks)
    assert torch.equal(reference.encode(masks), tokens)
    with torch.no_grad():
        torch.testing.assert_close(
            reference.decode(tokens[:, :4]), micro_official_model.decode(tokens[:, :4])
        )


def _same_outputs(a: MaskTokenizer, b: MaskTokenizer, masks: torch.Tensor) -> None:
    tokens = a.encode(masks)
    assert torch.equal(b.encode(masks), tokens)
    with torch.no_grad():
        assert torch.equal(a.decode(tokens[:, :6]), b.decode(tokens[:, :6]))
        soft = torch.softmax(
            torch.randn(masks.shape[0], 32, 1024, generator=torch.Generator().manual_seed(0)), -1
        )
        assert torch.equal(a.decode_soft(soft), b.decode_soft(soft))


def test_official_state_dict_round_trip(
    micro_official_model: MaskTokenizer, make_masks, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    config = micro_official_model.config
    masks = make_masks(2, seed=7)
    state = micro_official_model.to_official_state_dict()
    assert next(iter(state)) == "latent_tokens" and state["encoder.attn_mask"].dtype == torch.bool
    _same_outputs(micro_official_model, MaskTokenizer.from_official(state, config).eval(), masks)
    # {'model': ...} with DDP prefixes, as a weights-only .pth
    wrapped = {"model": {f"module.{k}": v for k, v in state.items()}}
    torch.save(wrapped, tmp_path / "himtok.pth")
    _same_outputs(
        micro_official_model, MaskTokenizer.from_official(tmp_path / "himtok.pth", config).eval(), masks
    )
    # LMM layout: mask_decoder.* among unrelated tensors, in a sharded safetensors checkpoint
    lmm = micro_official_model.to_official_state_dict(prefix="mask_decoder.")
    keys = sorted(lmm)
    shard_a = {k: lmm[k] for k in keys[: len(keys) // 2]}
    shard_b = {k: lmm[k] for k in keys[len(keys) // 2 :]} | {
        "language_model.lm_head.weight": torch.zeros(3, 2)
    }
    save_file(shard_a, str(tmp_path / "a.safetensors"))
    save_file(shard_b, str(tmp_path / "b.safetensors"))
    weight_map = {k: "a.safetensors" for k in shard_a} | {k: "b.safetensors" for k in shard_b}
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(__import__("json").dumps({"metadata": {}, "weight_map": weight_map}))
    _same_outputs(micro_official_model, MaskTokenizer.from_official(index, config).eval(), masks)
    _same_outputs(micro_official_model, MaskTokenizer.from_official(tmp_path, config).eval(), masks)


def test_save_and_load_pretrained(micro_model: MaskTokenizer, make_masks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    micro_model.save_pretrained(tmp_path / "tok")
    assert (tmp_path / "tok" / "config.json").is_file()
    loaded = MaskTokenizer.from_pretrained(tmp_path / "tok").eval()
    assert loaded.config == micro_model.config
    _same_outputs(micro_model, loaded, make_masks(2, seed=8))


def test_forward_decodes_every_level_in_one_pass(make_config, make_masks) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(5)
    model = MaskTokenizer(make_config()).eval()
    masks = make_masks(3, seed=9)
    levels = torch.tensor([[1, 4, 31], [2, 2, 32], [16, 8, 1]])
    with torch.no_grad():
        out = model(masks, levels)
    assert isinstance(out, TokenizerOutput)
    assert out.logits.shape == (3, 4, 256, 256)
    assert out.targets.shape == (3, 256, 256) and torch.equal(out.targets, masks)
    assert torch.equal(out.lengths[:, 0], torch.full((3,), 32))
    assert torch.equal(out.tokens, model.encode(masks))
    with torch.no_grad():
        for sample in range(3):
            for column, length in enumerate(out.lengths[sample].tolist()):
                expected = model.decode_logits(out.tokens[sample : sample + 1, :length])[0]
                torch.testing.assert_close(out.logits[sample, column], expected, atol=1e-4, rtol=1e-4)


def test_forward_broadcasts_levels_and_lowers_output_size(micro_model: MaskTokenizer, make_masks) -> None:  # type: ignore[no-untyped-def]
    masks = make_masks(2, seed=10)
    with torch.no_grad():
        out = micro_model(masks, torch.tensor([3, 9]), output_size=64)
        only_full = micro_model(masks)
    assert out.logits.shape == (2, 3, 64, 64) and out.targets.shape == (2, 64, 64)
    assert out.lengths.tolist() == [[32, 3, 9], [32, 3, 9]]
    assert only_full.logits.shape == (2, 1, 256, 256)


def test_gradients_reach_the_encoder_through_the_straight_through_estimator(make_config, make_masks) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(6)
    model = MaskTokenizer(make_config()).train()
    out = model(make_masks(2, seed=12), torch.tensor([[1, 5], [7, 2]]))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        out.logits, out.targets.unsqueeze(1).expand_as(out.logits)
    )
    loss.backward()
    for name in (
        "latent_tokens",
        "encoder.patch_embed.weight",
        "encoder.conv_out.weight",
        "decoder.decoder_embed.weight",
    ):
        grad = model.get_parameter(name).grad
        assert grad is not None and float(grad.abs().sum()) > 0, name
    assert float(out.vq_aux.loss.detach()) >= 0


def test_decode_soft_is_differentiable_and_one_hot_matches_hard_decode_on_unit_codes(
    make_config, make_masks
) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(7)
    model = MaskTokenizer(make_config()).eval()
    with torch.no_grad():  # make the un-normalised codebook unit-norm, so soft one-hot == hard decode
        model.quantize.embedding_proj.weight.copy_(torch.eye(12))
        model.quantize.embedding.weight.copy_(
            torch.nn.functional.normalize(model.quantize.embedding.weight, dim=-1)
        )
    tokens = model.encode(make_masks(2, seed=13))[:, :10]
    one_hot = torch.nn.functional.one_hot(tokens, 1024).float().requires_grad_(True)
    soft = model.decode_soft(one_hot)
    with torch.no_grad():
        torch.testing.assert_close(soft, model.decode(tokens), atol=1e-5, rtol=0)
    soft.sum().backward()
    assert one_hot.grad is not None and float(one_hot.grad.abs().sum()) > 0


def test_numpy_probabilities_compare_like_official_threshold(micro_model: MaskTokenizer, make_masks) -> None:  # type: ignore[no-untyped-def]
    masks = make_masks(1, seed=14)
    with torch.no_grad():
        probs = micro_model.decode(micro_model.encode(masks))
    binary = (probs > 0.5).numpy()
    assert binary.dtype == np.bool_ and binary.shape == (1, 256, 256)
