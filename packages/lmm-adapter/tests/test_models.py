from __future__ import annotations

import numpy as np
import pytest
import torch
from himtok_lmm_adapter import (
    HFVLMAdapter,
    InternVLAdapter,
    MaskTokenLogitsProcessor,
    MaskVocab,
    adapter_for,
    add_mask_vocabulary,
    register_adapter,
    tiny_internvl,
    tiny_internvl_processor,
)
from transformers import AutoTokenizer, InternVLForConditionalGeneration


def test_tiny_internvl_is_untied_seeded_and_leaves_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    model_a, tokenizer = tiny_internvl(seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    model_b, _ = tiny_internvl(seed=3)
    model_c, _ = tiny_internvl(seed=4)
    emb, head = model_a.get_input_embeddings().weight, model_a.get_output_embeddings().weight
    assert emb.data_ptr() != head.data_ptr() and not torch.equal(emb, head)
    assert (
        model_a.config.tie_word_embeddings is False
        and model_a.config.text_config.tie_word_embeddings is False
    )
    assert torch.equal(emb, model_b.get_input_embeddings().weight)
    assert not torch.equal(emb, model_c.get_input_embeddings().weight)
    assert sum(p.numel() for p in model_a.parameters()) < 500_000
    assert isinstance(adapter_for(model_a), InternVLAdapter)
    assert adapter_for(model_a).image_token_id(model_a) == tokenizer.context_image_token_id


def test_tiny_internvl_generates_from_text_alone_and_from_an_image() -> None:
    model, tokenizer = tiny_internvl()
    batch = tokenizer(
        ["Segment the dog.", "What is the object and mask in the image?"], return_tensors="pt", padding=True
    )
    out = model.generate(**batch, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape == (2, batch["input_ids"].shape[1] + 4)

    processor = tiny_internvl_processor(tokenizer)
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Segment <ref>dog</ref>."}]}
    ]
    text = processor.apply_chat_template(messages)
    assert text.endswith("<|im_start|>assistant\n")
    image = (np.random.default_rng(0).random((30, 50, 3)) * 255).astype("uint8")
    inputs = processor(text=[text], images=[image])
    assert inputs["pixel_values"].shape == (1, 3, 56, 56)
    assert (
        int((inputs["input_ids"] == tokenizer.context_image_token_id).sum()) == model.config.image_seq_length
    )
    with_image = model(**inputs).logits
    inputs["pixel_values"] = inputs["pixel_values"] + 1.0
    assert not torch.allclose(with_image, model(**inputs).logits)  # the image really enters the model
    with pytest.raises(ValueError, match="placeholders"):
        processor(text=[text], images=[image, image])


def test_save_and_reload_keep_the_vocabulary(tmp_path) -> None:
    model, tokenizer = tiny_internvl()
    vocab = add_mask_vocabulary(model, tokenizer)
    with torch.no_grad():
        model.get_output_embeddings().weight[vocab.mask_slice] += torch.randn(1024, 64)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    loaded_tok = AutoTokenizer.from_pretrained(tmp_path)
    loaded = InternVLForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert MaskVocab.from_tokenizer(loaded_tok) == vocab
    assert add_mask_vocabulary(loaded, loaded_tok) == vocab
    assert len(loaded_tok) == len(tokenizer)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    emb, head = loaded.get_input_embeddings().weight, loaded.get_output_embeddings().weight
    assert emb.data_ptr() != head.data_ptr() and not torch.equal(
        emb[vocab.mask_slice], head[vocab.mask_slice]
    )

    text = "The mask appears at <|mt_start|>"
    assert loaded_tok(text)["input_ids"] == tokenizer(text)["input_ids"]
    batch = tokenizer([text], return_tensors="pt")
    kwargs = {
        "max_new_tokens": 10,
        "do_sample": False,
        "logits_processor": [MaskTokenLogitsProcessor(vocab, 8)],
    }
    assert torch.equal(model.generate(**batch, **kwargs), loaded.generate(**batch, **kwargs))


def test_adapter_registry() -> None:
    model, _ = tiny_internvl()
    assert isinstance(adapter_for(model), InternVLAdapter)
    with pytest.raises(ValueError, match="VLMAdapter protocol"):
        register_adapter("other", object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transformers model"):
        adapter_for(torch.nn.Linear(2, 2))

    class Custom(HFVLMAdapter):
        calls = 0

        def resize_vocabulary(self, model, new_size):
            Custom.calls += 1
            super().resize_vocabulary(model, new_size)

    model.config.model_type = "custom-vlm"  # the registry keys on config.model_type
    register_adapter("custom-vlm", Custom())
    add_mask_vocabulary(model, tiny_internvl()[1])
    assert Custom.calls == 1
