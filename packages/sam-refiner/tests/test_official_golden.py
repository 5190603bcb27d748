"""The released-format tiny `sam.pth` reproduces the official refinement (golden set official-tiny-sam).

One `refine(..., prompts="official")` call on the four official example images and the four golden prompts; hooks
capture the image features and prompt embeddings it computes on the way. Tolerances are the golden README's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from himtok_sam_refiner import PIXEL_MEAN, PIXEL_STD, SamRefiner, official_point_prompts, stretch_image
from himtok_sam_refiner.official_prompts import normalize_pixels
from PIL import Image

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def golden(shared_dir: Path) -> Path:
    path = shared_dir / "reference" / "golden" / "official-tiny-sam"
    if not (path / "expected.npz").is_file():
        pytest.skip(f"golden vectors not found at {path}")
    return path


@pytest.fixture(scope="module")
def images(shared_dir: Path) -> list[Image.Image]:
    folder = shared_dir / "data" / "himtok-examples" / "images"
    if not folder.is_dir():
        pytest.skip(f"official example images not found at {folder}")
    return [Image.open(folder / f"{i}.jpg") for i in range(4)]


@pytest.fixture(scope="module")
def inputs(golden: Path) -> dict[str, np.ndarray]:
    return dict(np.load(golden / "inputs.npz"))


@pytest.fixture(scope="module")
def expected(golden: Path) -> dict[str, np.ndarray]:
    return dict(np.load(golden / "expected.npz"))


@pytest.fixture(scope="module")
def run(golden: Path, images: list[Image.Image], inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """refine() once, capturing the encoder output and the prompt encoder outputs with forward hooks."""
    refiner = SamRefiner.from_official(golden / "sam.pth")
    features: list[torch.Tensor] = []
    captured: dict[str, Any] = {}
    hooks = [
        refiner.model.vision_encoder.register_forward_hook(
            lambda _m, _i, out: features.append(out.last_hidden_state.clone())
        ),
        refiner.model.prompt_encoder.register_forward_hook(
            lambda _m, _i, out: captured.__setitem__("prompts", (out[0].clone(), out[1].clone()))
        ),
    ]
    masks = [m[0] for m in inputs["mask_prompts"]]  # prompt i goes with image i
    try:
        captured["result"] = refiner.refine(images, masks, return_all=True)
    finally:
        for hook in hooks:
            hook.remove()
    captured["features"] = torch.cat(features)  # one encoder call per image batch
    return captured


def max_abs(got: np.ndarray | torch.Tensor, want: np.ndarray, name: str) -> float:
    got_np = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    assert got_np.shape == want.shape, f"{name}: shape {got_np.shape} != {want.shape}"
    return float(np.abs(got_np.astype(np.float64) - want.astype(np.float64)).max())


def test_image_input_matches_official_image_src(
    images: list[Image.Image], inputs: dict[str, np.ndarray]
) -> None:
    src = torch.stack([stretch_image(np.asarray(im.convert("RGB")), 1024) for im in images])
    assert src.dtype == torch.uint8 and src.shape == (4, 3, 1024, 1024)
    assert src.flatten(1).sum(1).tolist() == inputs["image_src_sums"].tolist()
    np.testing.assert_array_equal(src[:, :, :8, :8].numpy(), inputs["image_src_corner"])


def test_preprocessing(images: list[Image.Image], expected: dict[str, np.ndarray]) -> None:
    src = torch.stack([stretch_image(np.asarray(im.convert("RGB")), 1024) for im in images])
    mean = normalize_pixels(src, PIXEL_MEAN, PIXEL_STD).double().mean(dim=(1, 2, 3)).numpy()
    np.testing.assert_allclose(mean, expected["preprocessed_mean"], rtol=1e-6)


def test_point_prompts(inputs: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    points, labels = official_point_prompts(torch.from_numpy(inputs["mask_prompts"][:, 0]), scale=4.0)
    assert max_abs(points, expected["centroids"], "centroids") <= 1e-4
    # the known bug: the soft prompts 0 and 3 get a negative point
    assert labels.bool().tolist() == expected["is_foreground"].tolist() == [False, True, True, False]


def test_image_features(run: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
    features = run["features"]
    assert max_abs(features[0], expected["image_features_0"], "image_features_0") <= 1e-4
    stats = features.double()
    np.testing.assert_allclose(stats.mean(dim=(1, 2, 3)).numpy(), expected["image_features_mean"], rtol=1e-5)
    np.testing.assert_allclose(stats.std(dim=(1, 2, 3)).numpy(), expected["image_features_std"], rtol=1e-5)


def test_prompt_embeddings(run: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
    sparse, dense = run["prompts"]
    assert max_abs(sparse[:, 0], expected["sparse_embeddings"], "sparse_embeddings") <= 1e-4
    assert max_abs(dense, expected["dense_embeddings"], "dense_embeddings") <= 1e-4


def test_decoder_outputs(run: dict[str, Any], expected: dict[str, np.ndarray], golden: Path) -> None:
    result = run["result"]
    low_res = np.stack([d.low_res_logits for d in result.details])
    assert max_abs(low_res, expected["low_res_logits"], "low_res_logits") <= 2e-4
    iou_want = expected["iou_predictions"].reshape(-1)
    assert max_abs(result.iou, iou_want, "iou_predictions") <= 2e-4
    meta = json.loads((golden / "meta.json").read_text())
    np.testing.assert_allclose(result.iou, meta["iou"], atol=2e-4)
    refined = 1 / (1 + np.exp(-low_res[:, 0].astype(np.float64)))
    assert max_abs(refined, expected["refined"], "refined") <= 1e-4


def test_results_at_image_size(
    run: dict[str, Any], images: list[Image.Image], expected: dict[str, np.ndarray]
) -> None:
    """The refined map comes back at each image's size by NEAREST resize (the official predictor's path)."""
    result = run["result"]
    assert result.prompts == "official" and not result.fallback.any()
    for i, image in enumerate(images):
        width, height = image.size
        assert result.probs[i].shape == (height, width) and result.masks[i].shape == (height, width)
        # PIL's NEAREST takes source pixel floor((i + 0.5) * 256 / size), the one below at exact ties
        rows = np.floor((np.arange(height) + 0.5) * 256 / height).astype(int)
        cols = np.floor((np.arange(width) + 0.5) * 256 / width).astype(int)
        errors = [
            np.abs(
                result.probs[i]
                - expected["refined"][i][np.ix_(np.maximum(rows - dr, 0), np.maximum(cols - dc, 0))]
            )
            for dr in (0, 1)
            for dc in (0, 1)
        ]
        assert float(np.min(errors, axis=0).max()) <= 1e-4
        np.testing.assert_array_equal(result.masks[i], result.probs[i] > 0.5)
        # prompts come back in the image's pixels: the centroid undoes the 1024 stretch
        np.testing.assert_allclose(
            result.details[i].prompt.points[0],
            expected["centroids"][i] * [width / 1024, height / 1024],
            atol=1e-3,
        )
