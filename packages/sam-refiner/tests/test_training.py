"""The fine-tuning path: `training_inputs` + `forward_logits` give what `refine` computes, with gradients;
`save_pretrained` writes what `from_pretrained` loads."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from himtok_sam_refiner import BoxPointsSettings, SamRefiner, tiny_sam

NO_FALLBACK = BoxPointsSettings(fallback_iou=0.0)


def test_forward_logits_match_refine_and_carry_gradients(synth: SimpleNamespace) -> None:
    refiner = SamRefiner(tiny_sam(seed=1), settings=NO_FALLBACK)
    images = [synth.image(90, 140, 1), synth.image(64, 64, 2)]
    coarse = [
        [synth.disk((90, 140), (45, 70), 25).astype(np.float32), synth.soft_blob(256, (60, 200), 20)],
        [np.zeros((64, 64), np.float32), synth.disk((64, 64), (20, 40), 12)],
    ]
    inputs = refiner.training_inputs(images, coarse)
    assert inputs.planned.tolist() == [0, 1, 3]  # the empty coarse mask gets no prompts
    embeddings = refiner.model.vision_encoder(inputs.pixels)[0]
    out = refiner.forward_logits(embeddings, inputs)
    assert out.low_res.shape == (3, 3, refiner.grid, refiner.grid) and out.iou.shape == (3, 3)
    expected = refiner.refine(images, coarse, return_all=True).details
    assert expected is not None
    for row, mask in enumerate(inputs.planned):
        at_image = out.at_image(row)
        assert at_image.shape == (3, *inputs.sizes[mask])
        np.testing.assert_allclose(
            torch.sigmoid(at_image).detach(), expected[mask].candidate_probs, atol=1e-5
        )
        np.testing.assert_allclose(out.iou[row].detach(), expected[mask].candidate_iou, atol=1e-5)
    (out.low_res.mean() + out.iou.mean()).backward()
    grads = {n: p.grad for n, p in refiner.model.named_parameters()}
    assert grads["mask_decoder.iou_token.weight"].abs().sum() > 0
    assert grads["vision_encoder.patch_embed.projection.weight"].abs().sum() > 0


def test_nothing_to_plan_gives_empty_outputs(synth: SimpleNamespace) -> None:
    refiner = SamRefiner(tiny_sam(seed=1))
    inputs = refiner.training_inputs([synth.image(40, 40)], [np.zeros((40, 40), np.float32)])
    out = refiner.forward_logits(refiner.model.vision_encoder(inputs.pixels)[0], inputs)
    assert len(inputs.planned) == 0 and out.low_res.shape == (0, 3, refiner.grid, refiner.grid)


def test_save_pretrained_round_trip(tmp_path: Path, synth: SimpleNamespace) -> None:
    refiner = SamRefiner(tiny_sam(seed=2, image_size=64), settings=NO_FALLBACK)
    refiner.save_pretrained(tmp_path / "saved")
    loaded = SamRefiner.from_pretrained(tmp_path / "saved", settings=NO_FALLBACK)
    assert loaded.frame == 64 and loaded.image_processor is not None
    assert loaded.image_processor.pad_size["height"] == 64
    image, mask = synth.image(50, 70), synth.disk((50, 70), (25, 35), 15)
    a, b = refiner.refine(image, mask), loaded.refine(image, mask)
    np.testing.assert_allclose(a.probs[0], b.probs[0], atol=1e-6)


def test_the_released_layout_is_not_saved_or_fine_tuned(official_refiner: SamRefiner, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"keep its sam\.pth"):
        official_refiner.save_pretrained(tmp_path / "x")
    with pytest.raises(ValueError, match="standard SAM weights"):
        official_refiner.training_inputs(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), np.float32))
