from __future__ import annotations

import pytest
import torch
from himtok_hml_loss import HierarchicalMaskLoss
from himtok_lmm_adapter import (
    IGNORE_INDEX,
    MaskTokenTargets,
    MaskVocab,
    freeze_for_stage2,
    soft_mask_loss,
    supervised_spans,
)

L = 32


def training_batch(lmm, with_mask: tuple[bool, ...] = (True, False, True)):
    """Official-style samples: a gpt answer with a 32 x <|mt_0|> placeholder, padded on the right."""
    texts = [
        "Segment <ref>the dog</ref>. The mask appears at <|mt_start|>" + "<|mt_0|>" * L + "<|mt_end|>.",
        "Segment <ref>a cat</ref>. There is no such object in the image.",
        "Segment <ref>road</ref>. Sure, <|mt_start|>" + "<|mt_0|>" * L + "<|mt_end|>.",
    ][: len(with_mask)]
    lmm.tokenizer.padding_side = "right"
    batch = lmm.tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].clone()
    labels[batch["attention_mask"] == 0] = IGNORE_INDEX
    labels[:, :6] = IGNORE_INDEX  # the "question"
    masks = torch.zeros(len(texts), 48, 64)
    masks[0, 10:40, 5:30] = 1
    masks[-1, 0:20, 30:64] = 1
    return batch, labels, masks, torch.tensor(with_mask)


def test_backward_of_ce_plus_hml_reaches_lmm_and_decoder_not_encoder_or_quantizer(
    tiny_lmm, mask_tokenizer
) -> None:
    freeze_for_stage2(mask_tokenizer).train()
    tiny_lmm.model.train()
    batch, labels, masks, has_mask = training_batch(tiny_lmm)
    ids, labels, filled = MaskTokenTargets(tiny_lmm.vocab, mask_tokenizer)(
        batch["input_ids"], labels, masks, has_mask
    )
    assert filled.tolist() == [1, 0, 1]
    out = tiny_lmm.model(input_ids=ids, attention_mask=batch["attention_mask"], labels=labels)
    out.logits.retain_grad()
    hml = HierarchicalMaskLoss.official_lmm()
    mask_loss = soft_mask_loss(
        out.logits, labels, tiny_lmm.vocab, masks, mask_tokenizer, hml, has_mask=has_mask
    )
    assert mask_loss.num_masks == 2 and mask_loss.hml is not None
    (out.loss + mask_loss.total).backward()

    head_grad = tiny_lmm.model.get_output_embeddings().weight.grad
    assert head_grad is not None and head_grad[tiny_lmm.vocab.mask_slice].abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in mask_tokenizer.decoder.parameters())
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in mask_tokenizer.pixel_decoder.parameters()
    )
    for part in (mask_tokenizer.encoder, mask_tokenizer.quantize):
        assert all(p.grad is None for p in part.parameters())
    assert mask_tokenizer.latent_tokens.grad is None


def test_mask_loss_gradient_reaches_exactly_the_mask_columns_at_the_span_positions(
    tiny_lmm, mask_tokenizer
) -> None:
    freeze_for_stage2(mask_tokenizer)
    batch, labels, masks, has_mask = training_batch(tiny_lmm)
    ids, labels, _ = MaskTokenTargets(tiny_lmm.vocab, mask_tokenizer)(
        batch["input_ids"], labels, masks, has_mask
    )
    logits = torch.randn(*ids.shape, tiny_lmm.model.config.text_config.vocab_size, requires_grad=True)
    hml = HierarchicalMaskLoss.official_lmm()
    soft_mask_loss(
        logits, labels, tiny_lmm.vocab, masks, mask_tokenizer, hml, has_mask=has_mask
    ).total.backward()
    touched = logits.grad.abs().sum(-1) > 0  # [B, T]
    expected = torch.zeros_like(touched)
    for row in supervised_spans(labels, tiny_lmm.vocab, L):
        for span in row:
            expected[span.sample, span.start : span.start + L] = True  # logits at t-1 predict token t
    assert torch.equal(touched, expected)
    columns = logits.grad.abs().sum((0, 1)) > 0
    assert torch.equal(columns.nonzero().flatten(), torch.arange(logits.shape[-1])[tiny_lmm.vocab.mask_slice])


class LengthSpy:
    """Wraps a mask tokenizer and records how many token positions each soft decode receives."""

    def __init__(self, inner) -> None:
        self.inner, self.lengths = inner, []

    def decode_soft(self, probs, size=None):
        self.lengths.append(probs.shape[1])
        return self.inner.decode_soft(probs, size)

    def preprocess(self, masks):
        return self.inner.preprocess(masks)


def test_every_sampled_level_uses_exactly_its_first_l_positions(tiny_lmm, mask_tokenizer) -> None:
    vocab = tiny_lmm.vocab
    tokens = [1, vocab.start_id, *range(vocab.first_mask_id, vocab.first_mask_id + L), vocab.end_id]
    labels = torch.tensor([tokens])
    masks = torch.zeros(1, 32, 32)
    masks[0, 8:20, 4:30] = 1
    spy = LengthSpy(mask_tokenizer)
    hml = HierarchicalMaskLoss.official_lmm()
    levels = torch.tensor([1, 5, 31])
    logits = torch.randn(1, len(tokens), tiny_lmm.model.config.text_config.vocab_size, requires_grad=True)
    result = soft_mask_loss(logits, labels, vocab, masks, spy, hml, levels=levels)
    assert sorted(spy.lengths) == [1, 5, 31, 32]
    assert result.hml is not None and result.hml.per_level.shape == (4,)
    assert torch.allclose(result.total, result.hml.per_level.sum())
    # Level 5 alone depends on the first five mask positions only (logits rows 1..5).
    result.hml.per_level[2].backward()
    rows = logits.grad.abs().sum(-1)[0] > 0
    assert rows.nonzero().flatten().tolist() == [1, 2, 3, 4, 5]


def test_batch_without_masks_gives_a_connected_zero(tiny_lmm, mask_tokenizer) -> None:
    # A supervised span (pre-converted codes) but no ground-truth mask: CE only, no HML.
    _, labels, masks, has_mask = training_batch(tiny_lmm, with_mask=(False,))
    assert len(supervised_spans(labels, tiny_lmm.vocab, L)[0]) == 1
    logits = torch.randn(*labels.shape, tiny_lmm.model.config.text_config.vocab_size, requires_grad=True)
    hml = HierarchicalMaskLoss.official_lmm()
    result = soft_mask_loss(logits, labels, tiny_lmm.vocab, masks, mask_tokenizer, hml, has_mask=has_mask)
    assert result.num_masks == 0 and result.hml is None and float(result.total.detach()) == 0.0
    result.total.backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) == 0.0
    assert all(p.grad is not None for p in mask_tokenizer.decoder.parameters())


def test_mismatched_loss_settings_raise(mask_tokenizer) -> None:
    vocab = MaskVocab(start_id=1, end_id=2, first_mask_id=3, codebook_size=1024)
    logits, labels = torch.zeros(1, 4, 1100), torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="max_len"):
        soft_mask_loss(
            logits, labels, vocab, torch.zeros(1, 8, 8), mask_tokenizer, HierarchicalMaskLoss(max_len=16)
        )
    with pytest.raises(ValueError, match=r"\[B, T, V\]"):
        soft_mask_loss(logits[0], labels, vocab, torch.zeros(1, 8, 8), mask_tokenizer, HierarchicalMaskLoss())
