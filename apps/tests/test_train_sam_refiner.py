"""`uv run apps/train_sam_refiner` on a tiny SAM: a run end to end, exact resume, the coarse-mask generator,
the COCO reader, the loss, and bad flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from himtok_apps.sam_refiner import CoarseMaskMaker, CoarseSettings, CocoSamples, build_samples, morph
from himtok_apps.sam_refiner.cli import config_from_args, main
from himtok_apps.sam_refiner.config import SHIPPED_TOKENIZER, RefinerTrainConfig
from himtok_apps.sam_refiner.network import refine_loss
from himtok_apps.sam_refiner.trainer import train
from himtok_apps.training.checkpoint import latest_checkpoint, load_checkpoint
from himtok_mask_tokenizer import MaskTokenizer
from himtok_sam_refiner import MaskLogits, SamRefiner, tiny_sam
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not (SHIPPED_TOKENIZER / "config.json").is_file(), reason=f"no shipped tokenizer at {SHIPPED_TOKENIZER}"
)

SMALL = {
    "tiny_frame": 64,
    "batch_size": 2,
    "max_steps": 6,
    "max_minutes": None,
    "warmup_steps": 2,
    "log_every": 2,
    "eval_every": 4,
    "ckpt_every": 2,
    "val_size": 4,
    "val_size_during": 2,
    "data": "shapes:?size=48",
}


def small_config(out: Path, **overrides: object) -> RefinerTrainConfig:
    return RefinerTrainConfig(**{**SMALL, "out": str(out), **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tokenizer() -> MaskTokenizer:
    return MaskTokenizer.from_pretrained(SHIPPED_TOKENIZER).eval()


def test_a_tiny_run_writes_a_loadable_refiner_metrics_and_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items() if v is not None]
    assert main([*args, "--max-minutes", "0", "--out", str(run)]) == 0
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 6]
    assert {"loss", "bce", "dice", "iou_mse", "masks_per_s"} <= set(lines[0]) and "val" in lines[1]
    summary = json.loads((run / "report" / "summary.json").read_text())
    validation = summary["validation"]
    assert summary["steps"] == 6 and validation["masks"] == 4
    for when in ("before", "after"):
        assert 0 <= validation[when]["refined_miou"] <= 1
        assert validation[when]["coarse_miou"] == validation["coarse_miou"]  # the same coarse masks
    assert (run / "report" / "examples.png").stat().st_size > 1000
    refiner = SamRefiner.from_pretrained(run / "checkpoint")  # strict load of the export
    assert refiner.frame == 64
    # The image encoder is frozen by default; the mask decoder trains.
    start, end = tiny_sam(seed=0, image_size=64).state_dict(), refiner.model.state_dict()
    assert all(torch.equal(start[k], end[k]) for k in start if k.startswith("vision_encoder."))
    assert any(not torch.equal(start[k], end[k]) for k in start if k.startswith("mask_decoder."))
    assert (latest_checkpoint(run / "checkpoints") / "model" / "config.json").is_file()


def test_halt_then_resume_ends_bitwise_equal(tmp_path: Path) -> None:
    straight = train(small_config(tmp_path / "straight", ema=0.5))
    assert train(small_config(tmp_path / "broken", ema=0.5, halt_after=5)) is None
    assert latest_checkpoint(tmp_path / "broken" / "checkpoints").name == "step-0000004"
    resumed = train(config_from_args(["--resume", str(tmp_path / "broken")]))
    assert straight is not None and resumed is not None
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    a, b = (
        load_checkpoint(latest_checkpoint(tmp_path / n / "checkpoints"))["model"]
        for n in ("straight", "broken")
    )  # type: ignore[arg-type]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["validation"] == straight["validation"]


@pytest.mark.slow
def test_ddp_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items() if v is not None]
    launcher = ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29547"]
    command = [sys.executable, *launcher, "apps/train_sam_refiner", *args, "--max-steps", "2"]
    done = subprocess.run(
        [*command, "--max-minutes", "0", "--out", str(run)],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    digests = [json.loads((run / "ranks" / f"rank-{r}.json").read_text())["sha256"] for r in range(2)]
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert digests[0] == digests[1] == summary["weights_sha256"] and summary["world_size"] == 2


def _shape_mask(height: int, width: int, box: tuple[float, float, float, float], ellipse: bool) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    x0, y0, x1, y1 = box
    corners = (x0 * width, y0 * height, max(x0 + 0.05, x1) * width, max(y0 + 0.05, y1) * height)
    draw = ImageDraw.Draw(canvas)
    (draw.ellipse if ellipse else draw.rectangle)(corners, fill=255)
    return np.asarray(canvas) > 127


masks = st.builds(
    _shape_mask,
    st.integers(24, 96),
    st.integers(24, 96),
    st.tuples(*(st.floats(0.0, 0.6),) * 2, *(st.floats(0.3, 1.0),) * 2),
    st.booleans(),
)


@given(mask=masks, tokens=st.integers(1, 32), radius=st.integers(1, 4))
def test_coarse_masks_are_maps_at_the_mask_size_ordered_by_morphology(
    tokenizer: MaskTokenizer, mask: np.ndarray, tokens: int, radius: int
) -> None:
    maker = CoarseMaskMaker(tokenizer)
    eroded, plain, dilated = maker.make([mask] * 3, [tokens] * 3, [-radius, 0, radius])
    for out in (eroded, plain, dilated):
        assert out.shape == mask.shape and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
    assert (eroded <= plain + 1e-7).all() and (plain <= dilated + 1e-7).all()
    # a non-constant map has a pixel next to a larger one: a dilation raises it, an erosion lowers its neighbour
    assert plain.max() == plain.min() or ((dilated > plain).any() and (eroded < plain).any())


@given(mask=masks)
def test_32_tokens_without_morphology_is_the_tokenizer_reconstruction(
    tokenizer: MaskTokenizer, mask: np.ndarray
) -> None:
    (coarse,) = CoarseMaskMaker(tokenizer).make([mask], [32], [0])
    with torch.no_grad():
        codes = tokenizer.encode(torch.from_numpy(mask.astype(np.float32))[None])
        expected = tokenizer.decode(codes, size=mask.shape)[0].numpy()
    np.testing.assert_allclose(coarse, expected, atol=1e-5)


@given(seed=st.integers(0, 2**16), count=st.integers(1, 5))
def test_random_draws_stay_in_the_settings_and_repeat_with_the_seed(
    tokenizer: MaskTokenizer, seed: int, count: int
) -> None:
    settings = CoarseSettings(min_tokens=3, max_tokens=9, morph_prob=1.0, max_radius=0.05)
    maker = CoarseMaskMaker(tokenizer, settings)
    mask = _shape_mask(60, 80, (0.2, 0.2, 0.7, 0.8), True)
    draws = [maker.draw(np.random.default_rng(seed), mask.shape) for _ in range(count)]
    assert all(3 <= tokens <= 9 and 1 <= abs(radius) <= 4 for tokens, radius in draws)
    first = maker([mask] * count, np.random.default_rng(seed))
    again = maker([mask] * count, np.random.default_rng(seed))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_morphology_leaves_the_image_border_neutral() -> None:
    probs = torch.zeros(20, 20)
    probs[:, :8] = 1.0  # touches the left border
    eroded = morph(probs, -2)
    assert eroded[:, :6].eq(1).all() and eroded[:, 6:].eq(0).all()  # eroded from its inner edge only
    assert morph(probs, 3)[:, :11].eq(1).all()


def test_coco_pairs_split_by_image_id_and_missing_images_are_counted(tmp_path: Path) -> None:
    from himtok_apps.data.errors import SkipCounter

    images = tmp_path / "images"
    images.mkdir()
    records, annotations = [], []
    for image_id in (10, 11, 12):
        records.append({"id": image_id, "file_name": f"{image_id}.png", "width": 40, "height": 30})
        annotations.append(
            {
                "id": image_id,
                "image_id": image_id,
                "segmentation": [[5, 5, 30, 5, 30, 25, 5, 25]],
                "iscrowd": 0,
            }
        )
        if image_id != 12:  # image 12 is missing
            Image.fromarray(np.full((30, 40, 3), image_id, np.uint8)).save(images / f"{image_id}.png")
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": records, "annotations": annotations}))
    skips = SkipCounter()
    train_items = CocoSamples(path, images, split="train", skips=skips)
    assert len(train_items) == 1 and skips.count() == 1  # 11 kept, 12 skipped (no image), 10 held out
    sample = train_items.item(0)
    assert sample.image.shape == (30, 40, 3) and sample.mask.shape == (30, 40) and sample.mask[15, 15]
    held = build_samples(f"coco:{path},{images}", "val")
    assert len(held) == 1 and held.item(0).image[0, 0, 0] == 10


def test_the_loss_prefers_the_right_mask_and_trains_the_iou_estimate() -> None:
    refiner = SamRefiner(tiny_sam(image_size=64))
    image = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    target = np.zeros((48, 48), bool)
    target[12:30, 12:36] = True  # on SAM's 16x16 grid (one cell = 3 image pixels): rows 4:10, columns 4:12
    inputs = refiner.training_inputs([image], [[target.astype(np.float32)]])
    assert refiner.grid == 16

    def loss_of(sign: float, iou: float) -> float:
        low = torch.full((1, 3, 16, 16), -8.0 * sign)
        low[:, :, 4:10, 4:12] = 8.0 * sign
        loss, _ = refine_loss(MaskLogits(low, torch.full((1, 3), iou), refiner.frame, inputs), [target])
        return float(loss)

    assert loss_of(1.0, 0.9) < loss_of(-1.0, 0.9)
    assert loss_of(1.0, 0.9) < loss_of(1.0, 0.1)  # the true IoU of a near-perfect mask is high


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train", "wings"], "invalid choice"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--min-tokens", "9", "--max-tokens", "4"], "--min-tokens <= --max-tokens"),
        (["--init", "/no/such/dir"], "is not a transformers SAM directory"),
        (["--data", "pngdir:."], "the refiner trains on images"),
        (["--data", "coco:/no/such.json,."], "does not exist"),
        (["--val-data", "shapes:?context=2"], "does not apply"),
        (["--tiny-frame", "100"], "--tiny-frame must be a multiple of 16"),
        (["--resume", "/no/such/run"], "not a refiner run folder"),
        (["--lr", "fast"], "invalid float value"),
    ],
)
def test_bad_flags_fail_with_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main([*args, "--out", str(tmp_path / "x")])
    except SystemExit as exit_:
        code = int(exit_.code)  # type: ignore[arg-type]
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x").exists()
