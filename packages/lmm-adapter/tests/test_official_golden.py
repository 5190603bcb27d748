"""The converted official tiny release reproduces the official code's outputs (golden set official-tiny-lmm).

The official checkpoint is converted once per module with `convert_official`, then loaded with
`HiMTokModel.from_pretrained`: only transformers-native classes and this package run. Tolerances are those of the
golden set's README.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from himtok_lmm_adapter import HiMTokModel, MaskTokenLogitsProcessor, MaskTokenTargets, masks_from_generation
from himtok_lmm_adapter.official import convert_official, official_decode, official_mask_loss
from PIL import Image
from transformers import LogitsProcessor


@pytest.fixture(scope="module")
def golden(shared_dir: Path) -> Path:
    path = shared_dir / "reference" / "golden" / "official-tiny-lmm"
    if not (path / "expected.npz").is_file():
        pytest.skip(f"golden vectors not found at {path}")
    return path


@pytest.fixture(scope="module")
def converted(golden: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "himtok-tiny"
    convert_official(golden / "official-checkpoint", out, mask_heads=4, hashes=False)
    return out


@pytest.fixture(scope="module")
def model(converted: Path) -> HiMTokModel:
    return HiMTokModel.from_pretrained(converted)


@pytest.fixture(scope="module")
def inputs(golden: Path) -> dict[str, np.ndarray]:
    return dict(np.load(golden / "inputs.npz"))


@pytest.fixture(scope="module")
def expected(golden: Path) -> dict[str, np.ndarray]:
    return dict(np.load(golden / "expected.npz"))


@pytest.fixture(scope="module")
def meta(golden: Path) -> dict:
    return json.loads((golden / "meta.json").read_text())


@pytest.fixture(scope="module")
def teacher_forced(model: HiMTokModel, inputs: dict, expected: dict) -> dict:
    """The official teacher-forced batch after code replacement, run once."""
    ids = torch.from_numpy(inputs["input_ids"])
    labels = torch.from_numpy(inputs["labels"])
    masks = torch.from_numpy(inputs["target_masks"])
    replaced = MaskTokenTargets(model.vocab, model.mask_tokenizer)(ids, labels, masks)
    with torch.no_grad():
        out = model.lmm(
            input_ids=replaced.input_ids,
            attention_mask=torch.from_numpy(inputs["attention_mask"]),
            pixel_values=torch.from_numpy(inputs["pixel_values"]),
            labels=replaced.labels,
        )
    return {"replaced": replaced, "out": out, "masks": masks}


def close(got: torch.Tensor | np.ndarray, want: np.ndarray, atol: float, name: str) -> None:
    got_np = got.detach().float().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    assert got_np.shape == want.shape, f"{name}: shape {got_np.shape} != {want.shape}"
    err = float(np.abs(got_np.astype(np.float64) - want.astype(np.float64)).max())
    assert err <= atol, f"{name}: max abs error {err:.3g} > {atol}"


def test_conversion_report_names_ids_and_counts(converted: Path, meta: dict) -> None:
    report = json.loads((converted / "conversion_report.json").read_text())
    ids = meta["ids"]
    assert report["mask_token_ids"] == {
        "mt_start": ids["mt_start"],
        "mt_end": ids["mt_end"],
        "mt_0": ids["mt_0"],
        "codebook_size": 1024,
    }
    assert report["image_token_id"] == ids["img_context"]
    assert report["end_of_turn_id"] == ids["im_end"]
    assert report["vocab_size"] == meta["vocab_size"]
    # 220 source tensors: 165 mask decoder + 55 LMM; each packed projection (ViT qkv weight and bias in 2 layers,
    # LLM wqkv in 2 layers) becomes 3 tensors.
    assert report["tensors_read"] == 220
    assert report["mask_tokenizer_tensors_written"] == 165
    assert report["lmm_tensors_written"] == 55 + 4 * 2 + 2 * 2


def test_tiling_reproduces_official_pixel_values(model: HiMTokModel, golden: Path, inputs: dict) -> None:
    images = [Image.open(golden / name) for name in ("0.jpg", "3.jpg")]
    pixel_values, tiles = model.preprocess_images(images)
    assert tiles == inputs["num_tiles"].tolist()
    close(pixel_values, inputs["pixel_values"], 1e-5, "pixel_values")


def test_prompts_tokenize_like_the_official_batch(model: HiMTokModel, inputs: dict, meta: dict) -> None:
    texts = [model.build_prompt(q, n) for q, n in zip(meta["questions"], meta["num_tiles"], strict=True)]
    model.tokenizer.padding_side = "left"
    batch = model.tokenizer(texts, return_tensors="pt", padding=True)
    assert batch["input_ids"].tolist() == inputs["prompt_ids_left_padded"].tolist()
    assert batch["attention_mask"].tolist() == inputs["prompt_attention_left_padded"].tolist()


def test_vision_embeddings(model: HiMTokModel, inputs: dict, expected: dict) -> None:
    with torch.no_grad():
        features = model.lmm.get_image_features(pixel_values=torch.from_numpy(inputs["pixel_values"]))
    embeds = features.pooler_output if hasattr(features, "pooler_output") else features
    close(embeds, expected["vision_embeds"], 1e-4, "vision_embeds")


def test_codes_and_replaced_ids_are_exact(teacher_forced: dict, expected: dict, model: HiMTokModel) -> None:
    codes = model.mask_tokenizer.encode(teacher_forced["masks"])
    assert codes.tolist() == expected["codes"].tolist()
    assert teacher_forced["replaced"].input_ids.tolist() == expected["replaced_input_ids"].tolist()


def test_text_and_image_logits(teacher_forced: dict, expected: dict) -> None:
    logits = teacher_forced["out"].logits
    positions = torch.from_numpy(expected["text_positions"])
    close(logits[positions], expected["text_logits"], 1e-4, "text_logits")
    image_sums = logits[~positions].double().sum(-1)
    want = expected["image_logits_sum"]
    rel = np.abs(image_sums.numpy() - want) / np.maximum(np.abs(want), 1.0)
    assert rel.max() <= 1e-4, f"image_logits_sum: max rel error {rel.max():.3g}"


def test_official_stage2_losses(teacher_forced: dict, expected: dict, model: HiMTokModel, meta: dict) -> None:
    out = teacher_forced["out"]
    loss = official_mask_loss(
        out.logits,
        teacher_forced["replaced"].labels,
        model.vocab,
        teacher_forced["masks"],
        model.mask_tokenizer,
        cos2fine=meta["cos2fine"],
        rng=np.random.RandomState(meta["teacher_forced_numpy_seed_for_levels"]),
    )
    for name, got in (("ce_loss", out.loss), ("mask_loss", loss.mask_loss), ("level_loss", loss.level_loss)):
        want = float(expected[name])
        value = float(got.detach())
        assert abs(value - want) <= 1e-4 * abs(want), f"{name}: {value} vs {want}"
    total = float((out.loss + meta["mask_loss_weight"] * (loss.mask_loss + loss.level_loss)).detach())
    assert abs(total - float(expected["total_loss"])) <= 1e-4 * float(expected["total_loss"])
    close(loss.probs, expected["tt_probs"], 1e-5, "tt_probs")
    assert loss.valid.tolist() == expected["tt_valid"].tolist()
    soft = model.mask_tokenizer.decode_soft(torch.from_numpy(expected["tt_probs"]))
    close(soft, expected["soft_masks"], 5e-4, "soft_masks")


class ForceFirstMaskSpan(LogitsProcessor):
    """The golden's forcing: `<|mt_start|>` at step 0, then the mask span the constrained processor enforces."""

    def __init__(self, model: HiMTokModel, prompt_length: int) -> None:
        self.vocab = model.vocab
        self.prompt_length = prompt_length
        self.span = MaskTokenLogitsProcessor(model.vocab, length=32, forbid_outside=False)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] == self.prompt_length:
            forced = torch.full_like(scores, float("-inf"))
            forced[:, self.vocab.start_id] = 0
            return forced  # type: ignore[return-value]
        return self.span(input_ids, scores)


def _generate(model: HiMTokModel, inputs: dict, steps: int, processors: list) -> object:
    with torch.no_grad():
        return model.lmm.generate(
            input_ids=torch.from_numpy(inputs["prompt_ids_left_padded"]),
            attention_mask=torch.from_numpy(inputs["prompt_attention_left_padded"]),
            pixel_values=torch.from_numpy(inputs["pixel_values"]),
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
            logits_processor=processors,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=model.tokenizer.pad_token_id,
        )


def test_free_greedy_generation(model: HiMTokModel, inputs: dict, expected: dict, golden: Path) -> None:
    out = _generate(model, inputs, 24, [])
    prompt = inputs["prompt_ids_left_padded"].shape[1]
    new = out.sequences[:, prompt:]
    assert new.tolist() == expected["free_sequences"].tolist()
    responses = json.loads((golden / "responses.json").read_text())["free"]
    texts = [official_decode(model.tokenizer, row.tolist()).split("<|im_end|>")[0].strip() for row in new]
    assert texts == responses


def test_forced_generation_logits_and_masks(
    model: HiMTokModel, inputs: dict, expected: dict, golden: Path
) -> None:
    prompt = inputs["prompt_ids_left_padded"].shape[1]
    out = _generate(model, inputs, 40, [ForceFirstMaskSpan(model, prompt)])
    assert out.sequences[:, prompt:].tolist() == expected["forced_sequences"].tolist()
    close(torch.stack(out.logits, dim=1), expected["forced_logits"], 1e-4, "forced_logits")
    found = masks_from_generation(out, model.vocab, model.mask_tokenizer, mode="soft")
    close(found.first_per_sample(), expected["forced_mask_images"], 5e-4, "forced_mask_images")
    responses = json.loads((golden / "responses.json").read_text())["forced"]
    texts = [
        official_decode(model.tokenizer, row.tolist()).split("<|im_end|>")[0].strip()
        for row in out.sequences[:, prompt:]
    ]
    assert texts == responses


def test_segment_batch_equals_one_at_a_time(model: HiMTokModel, golden: Path, meta: dict) -> None:
    images = [Image.open(golden / "0.jpg"), Image.open(golden / "3.jpg").resize((200, 260))]
    prompts = [q.replace("<image>\n", "") for q in meta["questions"]]
    # The random tiny model writes no mask unless its answer starts one.
    kwargs = {"max_new_tokens": 40, "answer_prefix": "<|mt_start|>"}
    batch = model.segment(images, prompts, **kwargs)
    alone = [model.segment([img], [q], **kwargs)[0] for img, q in zip(images, prompts, strict=True)]
    for b, a, image in zip(batch, alone, images, strict=True):
        assert b.answer == a.answer
        assert b.token_ids == a.token_ids
        assert b.size == (image.height, image.width)
        assert len(b.masks) == len(a.masks) >= 1
        assert b.answer.startswith("<|mt_start|>") and b.ok, b.error
        for mb, ma in zip(b.masks, a.masks, strict=True):
            assert mb.codes == ma.codes
            assert mb.soft.shape == (image.height, image.width)
            assert float((mb.soft - ma.soft).abs().max()) < 1e-4


def test_save_pretrained_round_trip(model: HiMTokModel, tmp_path: Path, inputs: dict) -> None:
    model.save_pretrained(tmp_path / "copy")
    again = HiMTokModel.from_pretrained(tmp_path / "copy")
    ids = torch.from_numpy(inputs["prompt_ids_left_padded"][:1])
    with torch.no_grad():
        a = model.lmm(input_ids=ids).logits
        b = again.lmm(input_ids=ids).logits
    assert torch.equal(a, b)
    assert again.vocab == model.vocab
    assert again.settings == model.settings
    probe = torch.rand(1, 32, 1024).softmax(-1)
    assert torch.equal(model.mask_tokenizer.decode_soft(probe), again.mask_tokenizer.decode_soft(probe))
