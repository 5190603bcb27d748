"""The official-compatible stage-2 mask loss: selection, level draw, blur, and the official golden numbers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from himtok_hml_loss import level_labels
from himtok_lmm_adapter import MaskVocab
from himtok_lmm_adapter.official.loss import (
    OfficialMaskLoss,
    level_keep,
    official_bce,
    official_dice,
    official_level_sigma,
    official_level_target,
    official_levels,
    official_mask_loss,
    official_mask_loss_from_probs,
    official_token_probs,
)
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig

# ---------------------------------------------------------------------------------------------- selection

SMALL = MaskVocab(start_id=5, end_id=6, first_mask_id=7, codebook_size=8)


def _synthetic_batch() -> tuple[torch.Tensor, torch.Tensor, list[int | None]]:
    """Five rows of T = 12 (T_shifted = 11), length 4; returns logits, labels and, per row, the original
    position of the start token that counts (None: invalid)."""
    batch, seq, vocab_size = 5, 12, 16
    labels = torch.full((batch, seq), -100, dtype=torch.long)
    labels[0, 2] = SMALL.start_id  # shifted start 1: valid
    labels[1, 0] = SMALL.start_id  # dropped by the shift
    labels[1, 6] = SMALL.start_id  # shifted start 5: 5 + 4 + 1 = 10 < 11, valid (one token after the span)
    labels[1, 8] = SMALL.start_id  # not the first start: ignored
    labels[2, 7] = SMALL.start_id  # shifted start 6: 6 + 4 + 1 = 11 >= 11, invalid
    labels[4, 0] = SMALL.start_id  # only at position 0: gone after the shift, invalid
    # row 3: no start at all
    logits = torch.randn(batch, seq, vocab_size, generator=torch.Generator().manual_seed(0))
    return logits, labels, [2, 6, None, None, None]


def test_token_probs_synthetic_positions() -> None:
    logits, labels, starts = _synthetic_batch()
    logits.requires_grad_(True)
    probs, valid = official_token_probs(logits, labels, SMALL, length=4)
    assert probs.shape == (5, 4, 8) and probs.dtype == torch.float32
    assert valid.tolist() == [s is not None for s in starts]
    for row, start in enumerate(starts):
        if start is None:
            assert torch.equal(probs[row], torch.zeros(4, 8))
            continue
        # The original start sits at `start`; the logits at start .. start+3 predict the 4 mask tokens.
        expected = torch.softmax(2 * logits[row, start : start + 4, 7:15], dim=-1)
        torch.testing.assert_close(probs[row], expected, rtol=0, atol=1e-7)
    probs.sum().backward()
    assert logits.grad is not None
    assert torch.equal(logits.grad[2:], torch.zeros_like(logits.grad[2:]))  # invalid rows: no gradient


def test_token_probs_checks() -> None:
    logits, labels, _ = _synthetic_batch()
    with pytest.raises(ValueError, match="logits must be"):
        official_token_probs(logits, labels[:, :-1], SMALL)
    with pytest.raises(ValueError, match="columns"):
        official_token_probs(logits[..., :10], labels, SMALL)
    with pytest.raises(ValueError, match="length"):
        official_token_probs(logits, labels, SMALL, length=0)
    with pytest.raises(ValueError, match="integer"):
        official_token_probs(logits, labels.float(), SMALL)


# ---------------------------------------------------------------------------------------------- levels


def test_levels_equal_the_global_numpy_draw() -> None:
    state = np.random.get_state()
    try:
        for seed in (0, 7, 2008):
            np.random.seed(seed)
            global_draw = official_levels(None)
            assert official_levels(np.random.RandomState(seed)) == global_draw
    finally:
        np.random.set_state(state)
    rng = np.random.RandomState(1)
    for _ in range(50):
        idx = official_levels(rng, 3, 32)
        assert len(set(idx)) == 3 and all(-1 <= i <= 30 for i in idx)
    with pytest.raises(ValueError, match="RandomState"):
        official_levels(np.random.default_rng(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_levels"):
        official_levels(rng, 33, 32)


def test_level_keep_follows_python_slicing() -> None:
    probs = torch.arange(32)
    for index in range(-1, 31):
        assert level_keep(index) == len(probs[:index])
    assert level_keep(-1) == 31 and level_keep(0) == 0


def _official_2d_blur(masks: torch.Tensor, sigma: float) -> torch.Tensor:
    """The official 2-D formulation (normalised square kernel, zero-padded grouped conv), for comparison."""
    size = 2 * math.ceil(3 * sigma) + 1
    x = torch.arange(size) - size // 2
    kernel = torch.exp(-(x**2 + x.view(-1, 1) ** 2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).expand(masks.shape[0], 1, size, size)
    blurred = F.conv2d(masks.unsqueeze(0), kernel, padding=size // 2, groups=masks.shape[0]).squeeze(0)
    return blurred / blurred.amax(dim=(1, 2), keepdim=True).clamp(min=1e-6)


@pytest.mark.parametrize("index", [-1, 0, 2, 14, 30])
def test_level_target_matches_the_2d_blur(index: int) -> None:
    g = torch.Generator().manual_seed(index + 5)
    masks = torch.zeros(3, 24, 24)
    masks[0, 3:15, 5:20] = 1
    masks[1] = torch.rand(24, 24, generator=g)
    masks[2, 20:, 20:] = 0.5  # touches the border: zero padding matters
    got = official_level_target(masks, index)
    torch.testing.assert_close(got, _official_2d_blur(masks, official_level_sigma(index)), rtol=0, atol=2e-6)
    assert official_level_sigma(-1) == 98


def test_level_target_agrees_with_hml_official_schedule() -> None:
    masks = torch.zeros(2, 64, 64)
    masks[0, 10:40, 20:50] = 1
    masks[1, 50:, :30] = 1
    for index in (-1, 3, 20):  # official level l = index + 2 (the schedule's l = 32 is the mask itself)
        hml = level_labels(masks, torch.tensor([index + 2]), schedule="official")[:, 0]
        torch.testing.assert_close(official_level_target(masks, index), hml, rtol=0, atol=1e-5)
    empty = official_level_target(torch.zeros(1, 8, 8), 5)
    assert torch.equal(empty, torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="index"):
        official_level_target(masks, -2)


def test_bce_and_dice_terms() -> None:
    p = torch.tensor([[0.0, 1.0], [0.25, 0.5]])
    t = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    pc = p.clamp(1e-6, 1 - 1e-6)
    bce = -(t * pc.log() + (1 - t) * (1 - pc).log()).mean()
    torch.testing.assert_close(official_bce(p, t), bce)
    dice = 1 - (2 * (pc * t).sum() + 1e-6) / (pc.sum() + t.sum() + 1e-6)
    torch.testing.assert_close(official_dice(p, t), dice)


# ---------------------------------------------------------------------------------------------- loss (small model)


def _tiny_tokenizer() -> MaskTokenizer:
    config = MaskTokenizerConfig.preset(
        "tiny",
        encoder_width=32,
        decoder_width=32,
        encoder_heads=2,
        decoder_heads=2,
        encoder_depth=1,
        decoder_depth=1,
        head_hidden=32,
        z_channels=16,
        codebook_size=8,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return MaskTokenizer(config).eval()


@pytest.fixture(scope="module")
def tiny_tok() -> MaskTokenizer:
    return _tiny_tokenizer()


def _tiny_batch(
    tok: MaskTokenizer, valid_rows: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    length = tok.config.num_latent_tokens
    seq = length + 8
    labels = torch.full((2, seq), -100, dtype=torch.long)
    if valid_rows:
        labels[0, 2] = SMALL.start_id
        labels[1, 3] = SMALL.start_id
    logits = torch.randn(2, seq, 16, generator=torch.Generator().manual_seed(1))
    side = tok.config.image_size
    masks = torch.zeros(2, side, side)
    masks[0, : side // 2, : side // 2] = 1
    masks[1, side // 4 :, side // 3 :] = 0.7
    return logits, labels, masks


def test_loss_structure_and_gradient(tiny_tok: MaskTokenizer) -> None:
    logits, labels, masks = _tiny_batch(tiny_tok)
    length = tiny_tok.config.num_latent_tokens
    logits.requires_grad_(True)
    out = official_mask_loss(
        logits, labels, SMALL, masks, tiny_tok, rng=np.random.RandomState(3), cos2fine=3, length=length
    )
    assert isinstance(out, OfficialMaskLoss)
    assert out.indices == official_levels(np.random.RandomState(3), 3, length)
    assert out.valid.tolist() == [True, True]
    torch.testing.assert_close(out.mask_loss, out.mask_bce + 0.25 * out.mask_dice)
    assert out.level_bce is not None and out.level_dice is not None
    torch.testing.assert_close(out.level_loss, 3 * (out.level_bce + 0.25 * out.level_dice))
    # The last level alone decides the level term: the same last index with other earlier ones gives it too.
    again = official_mask_loss_from_probs(out.probs.detach(), out.valid, masks, tiny_tok, [out.indices[-1]])
    torch.testing.assert_close(again.level_loss * 3, out.level_loss.detach())
    # Zero rows decode to the bias: the level input keeps the full length (index 0 keeps no token at all).
    none_kept = official_mask_loss_from_probs(out.probs.detach(), out.valid, masks, tiny_tok, [0])
    assert none_kept.level_tokens == 0
    with torch.no_grad():
        bias_masks = tiny_tok.decode_soft(torch.zeros(2, length, 8))
    target = official_level_target(masks, 0)
    torch.testing.assert_close(
        none_kept.level_loss, official_bce(bias_masks, target) + 0.25 * official_dice(bias_masks, target)
    )
    out.total.backward()
    assert logits.grad is not None and bool(logits.grad.abs().sum() > 0)
    no_levels = official_mask_loss(
        logits, labels, SMALL, masks, tiny_tok, rng=None, cos2fine=0, length=length
    )
    assert no_levels.indices == () and float(no_levels.level_loss) == 0.0


def test_loss_without_valid_rows_is_a_connected_zero(tiny_tok: MaskTokenizer) -> None:
    logits, labels, masks = _tiny_batch(tiny_tok, valid_rows=False)
    length = tiny_tok.config.num_latent_tokens
    out = official_mask_loss(
        logits, labels, SMALL, masks, tiny_tok, rng=np.random.RandomState(0), length=length
    )
    assert out.valid.tolist() == [False, False]
    assert out.mask_loss.item() == 0.0 and out.level_loss.item() == 0.0
    assert out.mask_bce.item() > 0  # the dummy row 0 was scored, then multiplied by 0
    params = [p for p in tiny_tok.decoder.parameters() if p.requires_grad]
    grads = torch.autograd.grad(out.total, params[0], allow_unused=True)
    assert grads[0] is not None  # the graph reaches the de-tokenizer


def test_loss_checks(tiny_tok: MaskTokenizer) -> None:
    logits, labels, masks = _tiny_batch(tiny_tok)
    length = tiny_tok.config.num_latent_tokens
    rng = np.random.RandomState(0)
    with pytest.raises(ValueError, match="cos2fine"):
        official_mask_loss(
            logits, labels, SMALL, masks, tiny_tok, rng=rng, cos2fine=length + 1, length=length
        )
    with pytest.raises(ValueError, match="cos2fine"):
        official_mask_loss(logits, labels, SMALL, masks, tiny_tok, rng=rng, cos2fine=-1, length=length)
    with pytest.raises(ValueError, match="length"):
        official_mask_loss(logits, labels, SMALL, masks, tiny_tok, rng=rng, length=length + 1)
    probs, valid = official_token_probs(logits, labels, SMALL, length)
    with pytest.raises(ValueError, match="target_masks"):
        official_mask_loss_from_probs(probs, valid, masks[:1], tiny_tok)
    with pytest.raises(ValueError, match="target_masks are"):
        official_mask_loss_from_probs(probs, valid, masks[:, :8, :8], tiny_tok)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        official_mask_loss_from_probs(probs, valid, masks * 2, tiny_tok)
    with pytest.raises(ValueError, match="valid"):
        official_mask_loss_from_probs(probs, valid.long(), masks, tiny_tok)
    with pytest.raises(ValueError, match="indices"):
        official_mask_loss_from_probs(probs, valid, masks, tiny_tok, [length - 1])
    with pytest.raises(ValueError, match="dice_weight"):
        official_mask_loss_from_probs(probs, valid, masks, tiny_tok, dice_weight=-1.0)


# ---------------------------------------------------------------------------------------------- golden


@pytest.fixture(scope="module")
def golden(shared_dir: Path) -> dict[str, Any]:
    root = shared_dir / "reference" / "golden"
    lmm = root / "official-tiny-lmm"
    if not (lmm / "expected.npz").is_file():
        pytest.skip(f"LMM golden vectors not found at {lmm}")
    import json

    meta = json.loads((lmm / "meta.json").read_text())
    config = MaskTokenizerConfig.from_official_json(root / "official-tiny" / "config.json")
    model = MaskTokenizer.from_official(lmm / "official-checkpoint" / "model.safetensors", config).eval()
    return {
        "expected": dict(np.load(lmm / "expected.npz")),
        "inputs": dict(np.load(lmm / "inputs.npz")),
        "meta": meta,
        "model": model,
        "vocab": MaskVocab(meta["ids"]["mt_start"], meta["ids"]["mt_end"], meta["ids"]["mt_0"], 1024),
    }


def _rel(got: torch.Tensor, want: np.ndarray) -> float:
    return abs(float(got) / float(want) - 1)


def test_golden_losses_from_probs(golden: dict[str, Any]) -> None:
    exp, inp, meta = golden["expected"], golden["inputs"], golden["meta"]
    probs = torch.from_numpy(exp["tt_probs"])
    valid = torch.from_numpy(exp["tt_valid"])
    # The golden run seeded numpy's global RNG right before the forward: the loss's draw is the first one.
    indices = official_levels(
        np.random.RandomState(meta["teacher_forced_numpy_seed_for_levels"]), meta["cos2fine"]
    )
    with torch.no_grad():
        out = official_mask_loss_from_probs(
            probs, valid, torch.from_numpy(inp["target_masks"]), golden["model"], indices
        )
    assert out.indices == (3, 0, 2)  # scored level: index 2, i.e. x = 3, 2 tokens kept, σ = 23
    assert out.level_tokens == 2
    assert _rel(out.mask_loss, exp["mask_loss"]) < 1e-4
    assert _rel(out.level_loss, exp["level_loss"]) < 1e-4
    assert float((out.masks - torch.from_numpy(exp["soft_masks"])).abs().max()) < 5e-4
    total = float(exp["ce_loss"]) + meta["mask_loss_weight"] * float(out.total)
    assert abs(total / float(exp["total_loss"]) - 1) < 1e-4


def test_golden_from_constructed_logits(golden: dict[str, Any]) -> None:
    """Logits whose mask columns are 0.5·log(tt_probs) at the right positions give back the golden
    probabilities, and the full loss from logits and labels gives the golden numbers."""
    exp, inp, meta, vocab = golden["expected"], golden["inputs"], golden["meta"], golden["vocab"]
    labels = torch.from_numpy(inp["labels"])
    batch, seq = labels.shape
    logits = torch.randn(batch, seq, meta["vocab_size"], generator=torch.Generator().manual_seed(0))
    tt_probs = torch.from_numpy(exp["tt_probs"])
    for row in range(batch):
        start = int((labels[row] == vocab.start_id).nonzero()[0])
        logits[row, start : start + 32, vocab.mask_slice] = (
            0.5 * tt_probs[row].log() + 3.0
        )  # shift: no effect
    probs, valid = official_token_probs(logits, labels, vocab)
    assert valid.tolist() == exp["tt_valid"].tolist()
    assert float((probs - tt_probs).abs().max()) < 1e-5
    seed = meta["teacher_forced_numpy_seed_for_levels"]
    with torch.no_grad():
        out = official_mask_loss(
            logits,
            labels,
            vocab,
            torch.from_numpy(inp["target_masks"]),
            golden["model"],
            rng=np.random.RandomState(seed),
            cos2fine=meta["cos2fine"],
        )
    assert _rel(out.mask_loss, exp["mask_loss"]) < 1e-4
    assert _rel(out.level_loss, exp["level_loss"]) < 1e-4
