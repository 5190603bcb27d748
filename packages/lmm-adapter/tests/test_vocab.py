from __future__ import annotations

import pytest
import torch
from himtok_lmm_adapter import MaskVocab, add_mask_vocabulary, build_tiny_tokenizer, tiny_internvl
from himtok_prompt_templates import MT_END, MT_START, mask_token, mask_vocabulary
from hypothesis import given, settings
from hypothesis import strategies as st

VOCAB = MaskVocab(start_id=100, end_id=101, first_mask_id=102, codebook_size=1024)


def test_vocabulary_is_added_once_with_contiguous_ids_read_from_the_tokenizer() -> None:
    model, tokenizer = tiny_internvl()
    before = len(tokenizer)
    vocab = add_mask_vocabulary(model, tokenizer)
    assert len(tokenizer) == before + 1026
    assert vocab.start_id == tokenizer.convert_tokens_to_ids(MT_START)
    assert vocab.end_id == tokenizer.convert_tokens_to_ids(MT_END)
    ids = tokenizer.convert_tokens_to_ids([mask_token(k) for k in range(1024)])
    assert ids == list(range(vocab.first_mask_id, vocab.first_mask_id + 1024))
    # Each mask token is one special token, also inside running text.
    text = f"at {MT_START}{mask_token(7)}{mask_token(1023)}{MT_END}."
    encoded = tokenizer(text)["input_ids"]
    assert [vocab.start_id, vocab.first_mask_id + 7, vocab.first_mask_id + 1023, vocab.end_id] == [
        i for i in encoded if i >= vocab.start_id
    ]

    weights = {k: v.clone() for k, v in model.state_dict().items()}
    again = add_mask_vocabulary(model, tokenizer)
    assert again == vocab
    assert len(tokenizer) == before + 1026
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_embeddings_are_resized_with_the_documented_initialisation() -> None:
    model, tokenizer = tiny_internvl()
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    vocab = add_mask_vocabulary(model, tokenizer)
    new_in = model.get_input_embeddings().weight
    new_out = model.get_output_embeddings().weight
    n_old = old_in.shape[0]
    assert new_in.shape[0] == new_out.shape[0] == len(tokenizer) == model.config.text_config.vocab_size
    assert torch.equal(new_in[:n_old], old_in) and torch.equal(new_out[:n_old], old_out)
    new_rows = torch.arange(n_old, vocab.last_id + 1)
    # Output rows: exactly the mean of the old output rows (official).
    assert torch.allclose(new_out[new_rows], old_out.mean(0).expand(len(new_rows), -1), atol=1e-6)
    # Input rows: transformers' mean resizing, a sample of N(mean, 1e-9 cov): the mean up to tiny noise.
    assert torch.allclose(new_in[new_rows], old_in.mean(0).expand(len(new_rows), -1), atol=1e-3)
    assert not torch.allclose(old_in.mean(0), old_out.mean(0), atol=1e-3)
    # Untied: separate storage.
    assert new_in.data_ptr() != new_out.data_ptr()


def test_tied_model_is_untied_before_the_output_rows_are_set() -> None:
    model, tokenizer = tiny_internvl()
    model.lm_head.weight = model.get_input_embeddings().weight  # tie them by hand
    old = model.get_input_embeddings().weight.detach().clone()
    vocab = add_mask_vocabulary(model, tokenizer)
    inputs, outputs = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert inputs is not outputs
    assert model.config.tie_word_embeddings is False and model.config.text_config.tie_word_embeddings is False
    assert torch.allclose(outputs[vocab.first_mask_id], old.mean(0), atol=1e-6)
    with torch.no_grad():
        outputs[vocab.first_mask_id] += 1.0
    assert not torch.equal(inputs[vocab.first_mask_id], outputs[vocab.first_mask_id])


def test_spare_padding_rows_that_receive_new_tokens_get_the_mean() -> None:
    model, tokenizer = tiny_internvl()
    real = len(tokenizer)
    model.resize_token_embeddings(real + 8, mean_resizing=False)  # a padded matrix, like many checkpoints
    with torch.no_grad():
        model.get_input_embeddings().weight[real:] = 99.0
    old_in = model.get_input_embeddings().weight[:real].detach().clone()
    vocab = add_mask_vocabulary(model, tokenizer)
    assert vocab.start_id == real  # the tokenizer, not the matrix, decides the ids
    inputs = model.get_input_embeddings().weight
    assert torch.allclose(inputs[real : real + 8], old_in.mean(0).expand(8, -1), atol=1e-6)
    assert inputs.shape[0] == len(tokenizer)


def test_partial_vocabulary_is_refused() -> None:
    model, tokenizer = tiny_internvl()
    tokenizer.add_tokens(mask_vocabulary(1024)[:10], special_tokens=True)
    with pytest.raises(ValueError, match="10 of the 1026"):
        add_mask_vocabulary(model, tokenizer)


def test_non_contiguous_ids_are_refused() -> None:
    tokenizer = build_tiny_tokenizer()
    strings = mask_vocabulary(16)
    tokenizer.add_tokens([strings[0], strings[1], strings[3], strings[2], *strings[4:]], special_tokens=True)
    with pytest.raises(ValueError, match="not contiguous"):
        MaskVocab.from_tokenizer(tokenizer, codebook_size=16)
    with pytest.raises(ValueError, match="lacks"):
        MaskVocab.from_tokenizer(build_tiny_tokenizer(), codebook_size=16)


def test_tokenizer_and_model_that_disagree_are_refused() -> None:
    model, tokenizer = tiny_internvl()
    add_mask_vocabulary(model, tokenizer)
    fresh_model, _ = tiny_internvl()
    with pytest.raises(ValueError, match="embedding rows"):
        add_mask_vocabulary(fresh_model, tokenizer)


@given(st.lists(st.integers(0, 1023), min_size=1, max_size=40))
def test_codes_and_ids_round_trip(codes: list[int]) -> None:
    ids = VOCAB.codes_to_ids(codes)
    assert bool(VOCAB.is_mask_id(ids).all())
    assert ids.tolist() == [c + 102 for c in codes]
    assert VOCAB.ids_to_codes(ids).tolist() == codes
    assert torch.equal(torch.arange(2000)[VOCAB.mask_slice][torch.tensor(codes)], ids)


@settings(max_examples=25)
@given(st.integers(-5000, 5000).filter(lambda c: not 0 <= c < 1024))
def test_out_of_range_codes_raise(code: int) -> None:
    with pytest.raises(ValueError, match="mask codes must lie"):
        VOCAB.codes_to_ids([3, code])


def test_non_mask_ids_raise_and_bad_vocab_is_refused() -> None:
    with pytest.raises(ValueError, match="not mask tokens"):
        VOCAB.ids_to_codes([102, VOCAB.start_id])
    with pytest.raises(ValueError, match="integers"):
        VOCAB.codes_to_ids(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="inside the mask-token id range"):
        MaskVocab(start_id=200, end_id=101, first_mask_id=102)
