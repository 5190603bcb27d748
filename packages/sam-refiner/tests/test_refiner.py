"""SamRefiner.refine on a tiny random SAM: sizes, batching, embedding reuse, edge cases and bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from himtok_sam_refiner import BoxPointsSettings, RefineResult, SamRefiner, tiny_sam
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import SamImageProcessorPil, SamProcessor

NO_FALLBACK = BoxPointsSettings(fallback_iou=0.0)


@pytest.fixture(scope="module")
def raw() -> SamRefiner:
    """The tiny standard SAM with the fallback off, so SAM's own answers come back."""
    return SamRefiner(tiny_sam(seed=0), settings=NO_FALLBACK)


def assert_same(a: RefineResult, b: RefineResult, atol: float = 1e-5) -> None:
    assert len(a) == len(b)
    for pa, pb in zip(a.probs, b.probs, strict=True):
        np.testing.assert_allclose(pa, pb, atol=atol)
    np.testing.assert_allclose(a.iou, b.iou, atol=atol)
    np.testing.assert_array_equal(a.fallback, b.fallback)


def check_invariants(result: RefineResult, sizes: list[tuple[int, int]], coarse: list[np.ndarray]) -> None:
    for i, (prob, mask) in enumerate(zip(result.probs, result.masks, strict=True)):
        size = sizes[int(result.image_index[i])]
        assert prob.shape == size and mask.shape == size
        assert prob.dtype == np.float32 and mask.dtype == np.bool_
        assert prob.min() >= 0.0 and prob.max() <= 1.0
        np.testing.assert_array_equal(mask, prob > 0.5)
        if result.fallback[i] and coarse[i].shape == size:
            np.testing.assert_array_equal(prob, coarse[i].astype(np.float32))


def test_sizes_and_kinds_of_coarse_masks(refiner: SamRefiner, synth: SimpleNamespace) -> None:
    images = [
        synth.image(90, 140, 1),
        Image.fromarray(synth.image(120, 60, 2)),
        synth.image(64, 64, 3)[..., 0],
    ]
    coarse = [
        [synth.disk((90, 140), (45, 70), 25), synth.soft_blob(256, (128, 60), 30)],  # image size; LMM 256x256
        synth.soft_blob(60, (30, 30), 8)[:, :30],  # half size, same aspect ratio (60x30 for 120x60)
        torch.from_numpy(synth.soft_blob(32, (16, 16), 5)),  # a tensor
    ]
    result = refiner.refine(images, coarse)
    assert len(result) == 4 and result.prompts == "box+points"
    assert result.image_index.tolist() == [0, 0, 1, 2]
    sizes = [(90, 140), (120, 60), (64, 64)]
    assert [p.shape for p in result.probs] == [sizes[i] for i in result.image_index]
    assert result.iou.shape == result.fallback.shape == result.agreement.shape == (4,)
    assert np.isfinite(result.iou).all()
    check_invariants(result, sizes, [coarse[0][0], coarse[0][1], coarse[1], coarse[2].numpy()])


def test_batching_equals_one_by_one(raw: SamRefiner, synth: SimpleNamespace) -> None:
    images = [synth.image(90, 140, 1), synth.image(100, 100, 2)]
    coarse = [
        [
            synth.disk((90, 140), (45, 70), 25),
            synth.disk((90, 140), (20, 20), 12),
            synth.soft_blob(256, (40, 200), 30),
        ],
        [synth.soft_blob(256, (128, 128), 40)],
    ]
    together = raw.refine(images, coarse, return_all=True)
    alone = [raw.refine(images[i], m, return_all=True) for i, masks in enumerate(coarse) for m in masks]
    assert not together.fallback.any()
    for i, single in enumerate(alone):
        np.testing.assert_allclose(together.probs[i], single.probs[0], atol=1e-5)
        np.testing.assert_allclose(together.iou[i], single.iou[0], atol=1e-5)
        a, b = together.details[i], single.details[0]
        np.testing.assert_allclose(a.low_res_logits, b.low_res_logits, atol=1e-4)
        np.testing.assert_array_equal(a.prompt.labels, b.prompt.labels)
        np.testing.assert_allclose(a.prompt.points, b.prompt.points)
    # batch sizes smaller than the work change nothing either
    small = SamRefiner(raw.model, settings=NO_FALLBACK, image_batch_size=2, mask_batch_size=1)
    assert_same(small.refine(images, coarse), together)


def test_image_embedding_computed_once_per_image(raw: SamRefiner, synth: SimpleNamespace) -> None:
    seen: list[int] = []
    hook = raw.model.vision_encoder.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape[0]))
    try:
        images = [synth.image(80, 80, 1), synth.image(80, 120, 2)]
        coarse = [
            [synth.disk((80, 80), (40, 40), r) for r in (10, 20, 30)],
            [synth.disk((80, 120), (40, 60), 20)] * 4,
        ]
        result = raw.refine(images, coarse)
    finally:
        hook.remove()
    assert len(result) == 7
    assert sum(seen) == 2  # seven masks, two images through the encoder


def test_return_all_details(raw: SamRefiner, synth: SimpleNamespace) -> None:
    mask = synth.disk((90, 140), (45, 70), 25)
    result = raw.refine(synth.image(90, 140), mask, return_all=True)
    [details] = result.details
    assert details.low_res_logits.shape == (3, 32, 32)
    assert details.candidate_probs.shape == (3, 90, 140)
    assert details.chosen == int(np.argmax(details.candidate_iou))
    assert result.iou[0] == pytest.approx(details.candidate_iou[details.chosen])
    np.testing.assert_array_equal(result.probs[0], details.candidate_probs[details.chosen])
    prompt = details.prompt
    rows, cols = np.nonzero(mask)
    np.testing.assert_allclose(prompt.box, [cols.min(), rows.min(), cols.max(), rows.max()], atol=1e-3)
    assert prompt.labels[0] == 1 and set(prompt.labels.tolist()) <= {0, 1}
    x, y = prompt.points[0]
    assert mask[round(y), round(x)]  # the positive point is on the object
    for (x, y), label in zip(prompt.points, prompt.labels, strict=True):
        if label == 0:
            assert not mask[min(round(y), 89), min(round(x), 139)]


def test_empty_coarse_mask_is_kept(refiner: SamRefiner, synth: SimpleNamespace) -> None:
    result = refiner.refine(synth.image(50, 70), np.zeros((256, 256), np.float32), return_all=True)
    assert result.fallback.tolist() == [True] and np.isnan(result.iou[0])
    assert result.probs[0].shape == (50, 70) and not result.masks[0].any()
    assert result.details[0].chosen == -1 and result.details[0].low_res_logits.shape == (0, 32, 32)


def test_full_coarse_mask(raw: SamRefiner, synth: SimpleNamespace) -> None:
    result = raw.refine(synth.image(50, 70), np.ones((50, 70), bool), return_all=True)
    prompt = result.details[0].prompt
    np.testing.assert_allclose(prompt.box, [0, 0, 69, 49], atol=1e-3)
    assert prompt.labels.tolist() == [1]  # nowhere outside the mask for a negative point
    assert result.probs[0].shape == (50, 70) and np.isfinite(result.iou[0])


def test_mask_touching_the_border(raw: SamRefiner, synth: SimpleNamespace) -> None:
    mask = synth.disk((80, 100), (40, 0), 30)  # half a disk cut by the left border
    result = raw.refine(synth.image(80, 100), mask, return_all=True)
    prompt = result.details[0].prompt
    assert prompt.box[0] == 0
    points = prompt.points
    assert (points >= -0.5).all() and (points[:, 0] <= 99.5).all() and (points[:, 1] <= 79.5).all()
    x, y = points[0]
    assert prompt.labels[0] == 1 and mask[round(y), round(x)] and x > 3  # away from the border it touches


def test_fallback_threshold(refiner: SamRefiner, synth: SimpleNamespace) -> None:
    image, mask = synth.image(60, 60), synth.disk((60, 60), (30, 30), 15)
    always = SamRefiner(refiner.model, settings=BoxPointsSettings(fallback_iou=1.01)).refine(image, mask)
    never = SamRefiner(refiner.model, settings=BoxPointsSettings(fallback_iou=0.0)).refine(image, mask)
    assert always.fallback.tolist() == [True] and never.fallback.tolist() == [False]
    np.testing.assert_array_equal(always.masks[0], mask)
    assert always.agreement[0] == pytest.approx(never.agreement[0])
    default = refiner.refine(image, mask)
    assert default.fallback[0] == (default.agreement[0] < 0.5)


@settings(max_examples=15)
@given(
    height=st.integers(8, 160),
    width=st.integers(8, 160),
    top=st.floats(0, 1),
    left=st.floats(0, 1),
    extent=st.floats(0.05, 1),
    square=st.booleans(),
)
def test_any_size_any_box(
    refiner: SamRefiner, height: int, width: int, top: float, left: float, extent: float, square: bool
) -> None:
    """Results are at the image's size, probabilities in [0, 1], masks = probs > 0.5, the coarse mask on fallback."""
    h, w = (48, 48) if square else (height, width)
    mask = np.zeros((h, w), dtype=bool)
    r0, c0 = int(top * (h - 1)), int(left * (w - 1))
    mask[r0 : r0 + max(1, int(extent * h)), c0 : c0 + max(1, int(extent * w))] = True
    image = np.random.default_rng(height * 1000 + width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    result = refiner.refine(image, mask)
    check_invariants(result, [(height, width)], [mask])
    assert 0.0 <= result.agreement[0] <= 1.0
    if not square:  # non-empty at the image's size: SAM runs
        assert np.isfinite(result.iou[0])
    if np.isnan(result.iou[0]):  # a 48x48 sliver can vanish when shrunk to a small image: nothing to refine
        assert result.fallback[0] and not result.masks[0].any()


@pytest.mark.parametrize(
    ("images", "coarse", "message"),
    [
        (np.zeros((20, 20, 3), np.float32), np.zeros((20, 20), bool), "images must be uint8"),
        (np.zeros((20, 20, 4), np.uint8), np.zeros((20, 20), bool), r"expected \[H, W, 3\]"),
        (np.zeros((20, 20, 3), np.uint8), np.zeros((20, 20), np.uint8), "divide 0/255 masks by 255"),
        (np.zeros((20, 20, 3), np.uint8), np.full((20, 20), 1.5, np.float32), r"values must lie in \[0, 1\]"),
        (
            np.zeros((20, 20, 3), np.uint8),
            np.full((20, 20), -0.1, np.float32),
            r"values must lie in \[0, 1\]",
        ),
        (np.zeros((20, 20, 3), np.uint8), np.full((20, 20), np.nan, np.float32), "NaN"),
        (
            np.zeros((20, 40, 3), np.uint8),
            np.zeros((30, 20), np.float32),
            "coarse mask is 30x20 but its image is 20x40",
        ),
        (
            [np.zeros((20, 20, 3), np.uint8)] * 2,
            [np.zeros((20, 20), bool)],
            "2 images but 1 coarse-mask entries",
        ),
        (np.zeros((20, 20, 3), np.uint8), np.zeros(20, np.float32), r"expected \[h, w\] or \[K, h, w\]"),
        (np.zeros((20, 20, 3), np.uint8), [np.zeros(20, np.float32)], "expected a 2-D mask"),
        (np.zeros((20, 20, 3), np.uint8), "mask.png", "expected a mask"),
    ],
)
def test_bad_input(refiner: SamRefiner, images: object, coarse: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        refiner.refine(images, coarse)


def test_prompt_mode_must_match_the_weights(refiner: SamRefiner, official_refiner: SamRefiner) -> None:
    image, mask = np.zeros((20, 20, 3), np.uint8), np.ones((20, 20), bool)
    with pytest.raises(ValueError, match="needs the released refiner"):
        refiner.refine(image, mask, prompts="official")
    with pytest.raises(ValueError, match="no box embedding"):
        official_refiner.refine(image, mask, prompts="box+points")
    with pytest.raises(ValueError, match="prompts must be one of"):
        refiner.refine(image, mask, prompts="points")  # type: ignore[arg-type]


def test_official_mode(official_refiner: SamRefiner, synth: SimpleNamespace) -> None:
    images = [synth.image(90, 140, 1), synth.image(40, 40, 2)]
    coarse = [
        [synth.soft_blob(32, (16, 10), 4), synth.disk((90, 140), (45, 70), 20)],
        np.zeros((32, 32), bool),
    ]
    result = official_refiner.refine(images, coarse, return_all=True)
    assert result.prompts == "official" and not result.fallback.any()
    check_invariants(result, [(90, 140), (40, 40)], [np.zeros((1, 1))] * 3)
    labels = [d.prompt.labels.tolist() for d in result.details]
    assert labels == [[0], [1], [1]]  # soft touching the border: negative (the official bug); empty: positive
    assert all(d.prompt.box is None and d.low_res_logits.shape == (1, 32, 32) for d in result.details)
    np.testing.assert_allclose(result.details[2].prompt.points[0], [20, 20])  # empty: the image centre
    alone = official_refiner.refine(images[0], coarse[0][1])
    np.testing.assert_allclose(alone.probs[0], result.probs[1], atol=1e-5)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sam") / "tiny-sam"
    tiny_sam(seed=0).save_pretrained(path)
    SamProcessor(
        SamImageProcessorPil(size={"longest_edge": 128}, pad_size={"height": 128, "width": 128})
    ).save_pretrained(path)
    return path


def test_from_pretrained(saved: Path, raw: SamRefiner, synth: SimpleNamespace) -> None:
    loaded = SamRefiner.from_pretrained(saved, settings=NO_FALLBACK)
    image, mask = synth.image(70, 90), synth.disk((70, 90), (35, 45), 20)
    assert_same(loaded.refine(image, mask), raw.refine(image, mask))


def test_from_pretrained_is_strict(saved: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in saved.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    weights = load_file(broken / "model.safetensors")
    weights.pop("mask_decoder.iou_token.weight")
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"missing_keys: \['mask_decoder\.iou_token\.weight'\]"):
        SamRefiner.from_pretrained(broken)
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        SamRefiner.from_pretrained(tmp_path / "nowhere")


def test_processor_must_match_the_frame(refiner: SamRefiner) -> None:
    wrong = SamImageProcessorPil(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    with pytest.raises(ValueError, match="the model takes 128x128"):
        SamRefiner(refiner.model, wrong)


def test_settings_are_a_frozen_dataclass() -> None:
    settings_ = replace(BoxPointsSettings(), fallback_iou=0.3)
    assert settings_.fallback_iou == 0.3 and BoxPointsSettings().fallback_iou == 0.5
