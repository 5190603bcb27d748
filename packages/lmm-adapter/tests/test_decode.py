from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from himtok_lmm_adapter import MaskTokenLogitsProcessor, MaskVocab, masks_from_generation
from transformers import LogitsProcessorList

VOCAB = MaskVocab(start_id=3, end_id=4, first_mask_id=10, codebook_size=1024)
V = 10 + 1024 + 6


def fake_output(tokens: list[list[int]], logits: torch.Tensor, prompt: int = 0) -> SimpleNamespace:
    """A `generate` output: sequences [B, prompt + N], logits N x [B, V]."""
    seq = torch.tensor(tokens)
    seq = torch.cat([torch.zeros(seq.shape[0], prompt, dtype=torch.long), seq], 1)
    return SimpleNamespace(sequences=seq, logits=tuple(logits.unbind(1)))


def one_hot_answer(codes: torch.Tensor, peak: float = 60.0) -> tuple[list[int], torch.Tensor]:
    """Tokens `text start m... end text` with logits whose mask columns are one-hot at `codes`."""
    n = codes.shape[0]
    tokens = [1, VOCAB.start_id, *(codes + VOCAB.first_mask_id).tolist(), VOCAB.end_id, 2]
    logits = torch.randn(len(tokens), V)
    # logits[t] predicted tokens[t]; the mask token at t = 2..n+1 comes from row t.
    logits[2 : n + 2, VOCAB.mask_slice] = peak * torch.nn.functional.one_hot(codes, 1024).float()
    return tokens, logits


def test_soft_and_hard_masks_of_a_generated_batch(shared_lmm, mask_tokenizer) -> None:
    model, tokenizer, vocab = shared_lmm.model, shared_lmm.tokenizer, shared_lmm.vocab
    prompts = ["Segment the dog. <|mt_start|>", "the road <|mt_start|>", "no mask here, please"]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    processor = MaskTokenLogitsProcessor(vocab, 32)
    out = model.generate(
        **batch,
        max_new_tokens=34,
        do_sample=False,
        logits_processor=LogitsProcessorList([processor]),
        output_logits=True,
        return_dict_in_generate=True,
    )
    new = out.sequences[:, batch["input_ids"].shape[1] :]
    for mode in ("soft", "hard"):
        found = masks_from_generation(out, vocab, mask_tokenizer, mode=mode)
        assert found.masks.shape == (2, 256, 256)
        assert found.sample_index.tolist() == [0, 1]
        assert found.has_mask.tolist() == [True, True, False]
        assert found.samples_without_mask == [2]
        assert found.well_formed.tolist() == [True, True]
        assert bool(((found.masks >= 0) & (found.masks <= 1)).all())
        # Greedy + constraint: the argmax codes are the tokens the model wrote.
        assert torch.equal(vocab.codes_to_ids(found.codes), new[:2, :32])
        first = found.first_per_sample()
        assert first.shape == (3, 256, 256) and torch.equal(first[:2], found.masks)
        assert not bool(first[2].any())
        assert found.for_sample(2).shape == (0, 256, 256)
    sized = masks_from_generation(out, vocab, mask_tokenizer, mode="soft", size=(40, 30))
    assert sized.masks.shape == (2, 40, 30)


def test_several_masks_in_one_answer_and_truncated_spans(mask_tokenizer) -> None:
    torch.manual_seed(0)
    codes_a, codes_b = torch.randint(0, 1024, (32,)), torch.randint(0, 1024, (32,))
    tok_a, log_a = one_hot_answer(codes_a)
    tok_b, log_b = one_hot_answer(codes_b)
    tail = [VOCAB.start_id, VOCAB.first_mask_id, VOCAB.first_mask_id]  # cut off by max_new_tokens
    tokens = [tok_a + tok_b + tail, [1] * (len(tok_a) + len(tok_b) + 3)]
    logits = torch.stack([torch.cat([log_a, log_b, torch.randn(3, V)]), torch.randn(len(tokens[1]), V)])
    found = masks_from_generation(fake_output(tokens, logits, prompt=5), VOCAB, mask_tokenizer, mode="hard")
    assert found.sample_index.tolist() == [0, 0]
    assert [s.start for s in found.spans] == [5 + 1, 5 + len(tok_a) + 1]
    assert torch.equal(found.codes, torch.stack([codes_a, codes_b]))
    assert torch.allclose(found.masks, mask_tokenizer.decode(torch.stack([codes_a, codes_b])))
    assert [(s.sample, s.start) for s in found.truncated] == [(0, 5 + len(tok_a) + len(tok_b))]
    assert found.samples_without_mask == [1]


def test_answers_without_any_mask_are_reported_not_raised(mask_tokenizer) -> None:
    out = fake_output([[1, 2, 1], [2, 2, 2]], torch.randn(2, 3, V))
    found = masks_from_generation(out, VOCAB, mask_tokenizer)
    assert found.masks.shape == (0, 256, 256) and found.samples_without_mask == [0, 1]
    assert found.first_per_sample().shape == (2, 256, 256)


def test_missing_logits_are_explained(mask_tokenizer) -> None:
    with pytest.raises(ValueError, match="output_logits=True"):
        masks_from_generation(torch.zeros(1, 4, dtype=torch.long), VOCAB, mask_tokenizer)
    with pytest.raises(ValueError, match="output_logits=True"):
        masks_from_generation(
            SimpleNamespace(sequences=torch.zeros(1, 4), logits=None), VOCAB, mask_tokenizer
        )
    with pytest.raises(ValueError, match="mode"):
        masks_from_generation(fake_output([[1]], torch.randn(1, 1, V)), VOCAB, mask_tokenizer, mode="argmax")


def test_one_hot_soft_path_matches_hard_path_up_to_codebook_normalisation(mask_tokenizer) -> None:
    """Soft decoding embeds `probs @ C` with the un-normalised codebook C (official LMM path); hard decoding
    uses the l2-normalised rows of C (official tokenizer path). A one-hot distribution therefore reproduces the
    hard mask exactly only when the rows of C have unit norm."""
    torch.manual_seed(1)
    codes = torch.randint(0, 1024, (32,))
    tokens, logits = one_hot_answer(codes)
    out = fake_output([tokens], logits[None])
    quantizer = mask_tokenizer.quantize
    with torch.no_grad():
        quantizer.embedding.weight.mul_(torch.empty(1024, 1).uniform_(0.3, 3.0))  # row norms far from 1
    soft = masks_from_generation(out, VOCAB, mask_tokenizer, mode="soft").masks
    hard = masks_from_generation(out, VOCAB, mask_tokenizer, mode="hard").masks
    assert torch.allclose(
        soft, mask_tokenizer.decode_soft(torch.nn.functional.one_hot(codes, 1024)[None].float())
    )
    assert (soft - hard).abs().max() > 1e-3

    with torch.no_grad():  # make every codebook row unit-norm: C = E P^T with P = I and unit rows in E
        quantizer.embedding_proj.weight.copy_(torch.eye(quantizer.dim))
        quantizer.embedding.weight.copy_(torch.nn.functional.normalize(quantizer.embedding.weight, dim=-1))
    soft = masks_from_generation(out, VOCAB, mask_tokenizer, mode="soft").masks
    hard = masks_from_generation(out, VOCAB, mask_tokenizer, mode="hard").masks
    assert torch.allclose(soft, hard, atol=1e-5)
