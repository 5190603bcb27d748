"""Bad input is refused at the boundary with a ValueError that names the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from himtok_mask_tokenizer import MaskTokenizer, key_report


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        (torch.full((2, 16, 16), float("nan")), "NaN"),
        (torch.full((1, 16, 16), 1.5), r"\[0, 1\]"),
        (torch.full((1, 16, 16), -0.1), r"\[0, 1\]"),
        (torch.zeros(16), "dimensions"),
        (torch.zeros(1, 1, 1, 16, 16), "dimensions"),
        (torch.zeros(2, 3, 16, 16), "Bx1xHxW"),
        (torch.zeros(0, 16, 16), "empty batch"),
        (torch.zeros(1, 0, 16), "empty spatial size"),
        (torch.zeros(1, 16, 16, dtype=torch.int64), "dtype"),
        (np.zeros((1, 16, 16), dtype=np.int32), "numpy dtype"),
        ([[0.0, 1.0]], "numpy array or a torch.Tensor"),
    ],
)
def test_bad_masks_raise(micro_model: MaskTokenizer, masks: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        micro_model.encode(masks)
    with pytest.raises(ValueError, match=message):
        micro_model(masks, torch.tensor([1]))


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (torch.tensor([[0, 1024]]), r"\[0, 1024\)"),
        (torch.tensor([[-1, 3]]), r"\[0, 1024\)"),
        (torch.zeros(1, 0, dtype=torch.long), "1..32"),
        (torch.zeros(1, 33, dtype=torch.long), "1..32"),
        (torch.zeros(0, 4, dtype=torch.long), "empty batch"),
        (torch.zeros(4, dtype=torch.long), r"\[B, L\]"),
        (torch.zeros(1, 4), "integer"),
        (np.zeros((1, 4), dtype=np.int64), "torch.Tensor"),
    ],
)
def test_bad_tokens_raise(micro_model: MaskTokenizer, tokens: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        micro_model.decode(tokens)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        micro_model.decode_logits(tokens)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        (torch.rand(1, 4, 1000), "1024"),
        (torch.rand(1, 33, 1024), "1..32"),
        (torch.rand(1, 0, 1024), "1..32"),
        (torch.rand(0, 4, 1024), "empty batch"),
        (torch.full((1, 4, 1024), float("nan")), "NaN"),
        (torch.ones(1, 4, 1024, dtype=torch.long), "floating-point"),
        (torch.rand(4, 1024), "shape"),
    ],
)
def test_bad_soft_probs_raise(micro_model: MaskTokenizer, probs: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        micro_model.decode_soft(probs)


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        (torch.tensor([0]), "1..32"),
        (torch.tensor([33]), "1..32"),
        (torch.tensor([1.5]), "integers"),
        (torch.tensor([[1], [2], [3]]), r"\[B=2, n\]"),
    ],
)
def test_bad_prefix_lengths_raise(
    micro_model: MaskTokenizer, make_masks, levels: torch.Tensor, message: str
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        micro_model(make_masks(2), levels)


def test_bad_size_and_output_size_raise(micro_model: MaskTokenizer, make_masks) -> None:  # type: ignore[no-untyped-def]
    tokens = torch.zeros(1, 4, dtype=torch.long)
    for size in [(0, 10), (10,), "big", (1.5, 3)]:
        with pytest.raises(ValueError, match="size must be a pair"):
            micro_model.decode(tokens, size=size)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="output_size"):
        micro_model(make_masks(1), output_size=512)


def test_checkpoint_with_a_missing_key_raises_naming_it(micro_official_model: MaskTokenizer) -> None:
    state = micro_official_model.to_official_state_dict()
    del state["decoder.ffn.2.bias"]
    with pytest.raises(ValueError, match=r"missing keys \(1\): decoder\.ffn\.2\.bias"):
        MaskTokenizer.from_official(state, micro_official_model.config)


def test_checkpoint_with_an_extra_key_raises_naming_it(micro_official_model: MaskTokenizer) -> None:
    state = micro_official_model.to_official_state_dict()
    state["sam.image_encoder.pos_embed"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"unexpected keys \(1\): sam\.image_encoder\.pos_embed"):
        MaskTokenizer.from_official(state, micro_official_model.config)


def test_checkpoint_with_a_wrong_shape_raises_naming_it(micro_official_model: MaskTokenizer) -> None:
    state = micro_official_model.to_official_state_dict()
    state["latent_tokens"] = torch.zeros(31, micro_official_model.config.encoder_width)
    with pytest.raises(ValueError, match="shape mismatch for latent_tokens"):
        MaskTokenizer.from_official(state, micro_official_model.config)


def test_key_report_lists_every_problem(micro_official_model: MaskTokenizer) -> None:
    expected = micro_official_model.state_dict()
    given = dict(expected)
    given.pop("quantize.embedding.weight")
    given.pop("encoder.attn_mask")
    given["extra"] = torch.zeros(1)
    report = key_report(expected, given)
    assert len(report) == 2
    assert "quantize.embedding.weight" in report[0] and "encoder.attn_mask" in report[0]
    assert "extra" in report[1]
    assert key_report(expected, expected) == []


def test_unreadable_checkpoints_raise(micro_official_model: MaskTokenizer, tmp_path: Path) -> None:
    config = micro_official_model.config
    with pytest.raises(ValueError, match="checkpoint not found"):
        MaskTokenizer.from_official(tmp_path / "absent.pth", config)
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="weights-only"):
        MaskTokenizer.from_official(tmp_path / "garbage.pth", config)
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        MaskTokenizer.from_official(tmp_path / "list.pth", config)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no checkpoint"):
        MaskTokenizer.from_official(tmp_path / "empty", config)
    with pytest.raises(ValueError, match=r"lacks config\.json"):
        MaskTokenizer.from_pretrained(tmp_path / "empty")
