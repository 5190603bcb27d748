"""The stage-2 trainer's inputs and losses against the official code (golden set official-tiny-lmm).

The trainer's own pieces rebuild the official teacher-forced batch from the conversation text (same ids, same
supervised labels) and its `official` loss gives the official CE, `mask_loss` and `level_loss`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from himtok_apps.stage2.batch import SampleEncoder, SampleError, collate
from himtok_apps.stage2.network import Stage2Network
from himtok_lmm_adapter import IGNORE_INDEX, HiMTokModel, TilingConfig
from himtok_lmm_adapter.official import convert_official
from PIL import Image


@dataclass
class Sample:
    image: Image.Image
    turns: list[dict[str, str]]
    masks: list[np.ndarray]
    key: str = "k"
    source: str = "test"
    meta: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def golden(shared_dir: Path) -> Path:
    path = shared_dir / "reference" / "golden" / "official-tiny-lmm"
    if not (path / "expected.npz").is_file():
        pytest.skip(f"golden vectors not found at {path}")
    return path


@pytest.fixture(scope="module")
def model(golden: Path, tmp_path_factory: pytest.TempPathFactory) -> HiMTokModel:
    out = tmp_path_factory.mktemp("converted") / "himtok-tiny"
    convert_official(golden / "official-checkpoint", out, mask_heads=4, hashes=False)
    return HiMTokModel.from_pretrained(out)


@pytest.fixture(scope="module")
def meta(golden: Path) -> dict:
    return json.loads((golden / "meta.json").read_text())


@pytest.fixture(scope="module")
def inputs(golden: Path) -> dict[str, np.ndarray]:
    return dict(np.load(golden / "inputs.npz"))


def golden_samples(golden: Path, meta: dict) -> list[Sample]:
    samples = []
    for question, image_name, mask_name in zip(meta["questions"], meta["images"], meta["masks"], strict=True):
        image = Image.open(golden / Path(image_name).name).convert("RGB")
        mask = np.asarray(Image.open(golden / Path(mask_name).name).convert("L")) > 127
        turns = [{"from": "human", "value": question}, {"from": "gpt", "value": meta["answer_template"]}]
        samples.append(Sample(image, turns, [mask]))
    return samples


def encoder_for(model: HiMTokModel) -> SampleEncoder:
    return SampleEncoder(model, max_length=4096, tiling=TilingConfig(image_size=224, max_tiles=4))


def test_encoded_batch_equals_the_official_batch(
    model: HiMTokModel, golden: Path, meta: dict, inputs: dict
) -> None:
    encoded = [encoder_for(model).encode(s) for s in golden_samples(golden, meta)]
    batch = collate(encoded, pad_id=int(inputs["input_ids"][0, -1]))
    want_ids, want_labels = inputs["input_ids"], inputs["labels"]
    assert batch.input_ids.shape == want_ids.shape
    np.testing.assert_array_equal(batch.attention_mask.numpy(), inputs["attention_mask"])
    real = inputs["attention_mask"].astype(bool)
    np.testing.assert_array_equal(batch.input_ids.numpy()[real], want_ids[real])
    np.testing.assert_array_equal(batch.labels.numpy(), want_labels)
    np.testing.assert_allclose(batch.pixel_values.numpy(), inputs["pixel_values"], atol=1e-5)


def test_official_loss_reproduces_the_golden_losses(
    model: HiMTokModel, golden: Path, meta: dict, inputs: dict
) -> None:
    expected = dict(np.load(golden / "expected.npz"))
    encoded = [encoder_for(model).encode(s) for s in golden_samples(golden, meta)]
    batch = collate(encoded, pad_id=int(inputs["input_ids"][0, -1]))
    # The golden target masks are the official loader's; feed them as the (single) mask of each sample.
    masks = [torch.from_numpy(m)[None].float() for m in inputs["target_masks"]]
    network = Stage2Network(
        model.lmm, model.mask_tokenizer, model.vocab, loss="official", hml_levels=meta["cos2fine"]
    )
    with torch.no_grad():
        out = network(
            batch.input_ids,
            batch.labels,
            batch.attention_mask,
            batch.pixel_values,
            masks,
            level_seed=meta["teacher_forced_numpy_seed_for_levels"],
        )
    assert out.parts["ce"] == pytest.approx(float(expected["ce_loss"]), rel=1e-4)
    assert out.parts["mask_loss"] == pytest.approx(float(expected["mask_loss"]), rel=1e-4)
    assert out.parts["level_loss"] == pytest.approx(float(expected["level_loss"]), rel=1e-4, abs=1e-6)
    total = out.parts["ce"] + meta["mask_loss_weight"] * (out.parts["mask_loss"] + out.parts["level_loss"])
    assert float(out.loss) == pytest.approx(total, rel=1e-5)


def test_paper_loss_counts_every_mask_and_reaches_the_decoder(
    model: HiMTokModel, golden: Path, meta: dict
) -> None:
    encoded = [encoder_for(model).encode(s) for s in golden_samples(golden, meta)]
    batch = collate(encoded, pad_id=0)
    network = Stage2Network(model.lmm, model.mask_tokenizer, model.vocab, loss="paper", hml_levels=2)
    out = network(batch.input_ids, batch.labels, batch.attention_mask, batch.pixel_values, batch.masks, 7)
    assert out.parts["masks"] == 2.0
    assert out.parts["mask_loss"] > 0
    out.loss.backward()
    decoder_grads = [p.grad for n, p in network.mask_tokenizer.named_parameters() if n.startswith("decoder")]
    assert any(g is not None and g.abs().sum() > 0 for g in decoder_grads)
    network.zero_grad(set_to_none=True)


def test_bad_samples_are_refused_with_a_reason(model: HiMTokModel, golden: Path, meta: dict) -> None:
    sample = golden_samples(golden, meta)[0]
    encoder = encoder_for(model)
    no_image = Sample(
        sample.image, [{"from": "human", "value": "Segment it."}, sample.turns[1]], sample.masks
    )
    with pytest.raises(SampleError, match="<image>"):
        encoder.encode(no_image)
    with pytest.raises(SampleError, match="1 mask placeholders but 0 masks"):
        encoder.encode(Sample(sample.image, sample.turns, []))
    wrong_size = Sample(sample.image, sample.turns, [np.zeros((5, 7), dtype=bool)])
    with pytest.raises(SampleError, match="size"):
        encoder.encode(wrong_size)
    short = SampleEncoder(model, max_length=50, tiling=TilingConfig(image_size=224, max_tiles=4))
    with pytest.raises(SampleError, match="max-length"):
        short.encode(sample)
    broken = dict(sample.turns[1])
    broken["value"] = broken["value"].replace("<|mt_0|>", "", 1)
    with pytest.raises(SampleError, match="placeholder"):
        encoder.encode(Sample(sample.image, [sample.turns[0], broken], sample.masks))
    labels = encoder.encode(sample).labels
    assert labels[0] == IGNORE_INDEX and labels[-1] != IGNORE_INDEX
