"""``apps/eval --tokenizer DIR --masks SOURCE``, and the benchmark scorer agreeing with it on a round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from himtok_apps.eval import (
    STANDARD,
    Ref,
    Sample,
    Sentence,
    evaluate_tokenizer,
    ground_truth,
    main,
    score_masks,
)
from himtok_apps.eval.masks import decode, encode, to_json
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig
from PIL import Image

torch.set_num_threads(1)

SIZE = 256
POLYGONS = [  # one object per image, 256 x 256, so the tokenizer sees the masks at their own size
    [[40, 40, 200, 40, 200, 180, 40, 180]],
    [[10, 120, 128, 10, 246, 120, 128, 246]],
    [[60, 60, 90, 60, 90, 230, 60, 230], [150, 20, 240, 20, 240, 80, 150, 80]],
    [[100, 100, 140, 100, 140, 130, 100, 130]],
    [[0, 0, 255, 0, 255, 40, 0, 40]],
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = MaskTokenizerConfig.preset(
        "tiny", encoder_width=32, decoder_width=32, encoder_heads=2, decoder_heads=2, encoder_depth=1,
        decoder_depth=1, head_hidden=32, z_channels=16,
    )  # fmt: skip
    torch.manual_seed(0)
    return MaskTokenizer(config).eval().save_pretrained(tmp_path_factory.mktemp("tok") / "tokenizer")


def samples() -> list[Sample]:
    out = []
    for i, polys in enumerate(POLYGONS):
        ref = Ref(
            i, i, Path(f"{i}.jpg"), SIZE, SIZE, (Sentence(0, "thing", "thing"),), segmentations=(polys,)
        )
        out.append(Sample(f"{i}:0", "refcoco", "val", ref, ("thing",)))
    return out


def write_masks(folder: Path) -> np.ndarray:
    folder.mkdir(parents=True)
    masks = np.stack([ground_truth(s.ref).dense() for s in samples()])
    for i, mask in enumerate(masks):
        Image.fromarray(mask * 255).save(folder / f"{i:03d}.png")
    return masks


def test_tokenizer_command(tmp_path: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_masks(tmp_path / "masks")
    out = tmp_path / "out"
    argv = [
        "--tokenizer",
        str(tokenizer_dir),
        "--masks",
        f"pngdir:{tmp_path / 'masks'}",
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_masks"] == len(POLYGONS)
    assert sorted(map(int, report["per_length"])) == list(range(1, 33))
    for values in report["per_length"].values():
        assert set(values) == {"miou", "ciou", "boundary_iou"} and all(0 <= v <= 1 for v in values.values())
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == len(POLYGONS) and len(rows[0]["IoU"]) == 32 and rows[0]["item"] == "000.png"
    assert np.mean([r["IoU"][31] for r in rows]) == pytest.approx(
        report["per_length"]["32"]["miou"], abs=1e-4
    )
    for name in ("iou_vs_tokens.png", "gallery.png", "report.md"):
        assert (out / name).is_file()
    assert "| 32 |" in capsys.readouterr().out


def test_round_trip_scores_what_the_tokenizer_evaluation_says(tmp_path: Path, tokenizer_dir: Path) -> None:
    """The benchmark scorer on the tokenizer's reconstructions of the ground truth gives the tokenizer
    evaluation's mIoU and cIoU at each number of tokens."""
    masks = write_masks(tmp_path / "masks")
    report = evaluate_tokenizer(
        tokenizer_dir, f"pngdir:{tmp_path / 'masks'}", tmp_path / "out", lengths=(2, 32), gallery=0
    )
    model = MaskTokenizer.from_pretrained(tokenizer_dir).eval()
    with torch.no_grad():
        tokens = model.encode(torch.from_numpy(masks.astype(np.float32)))
        for length in (2, 32):
            recon = (model.decode(tokens[:, :length]) > 0.5).numpy()
            records = {
                s.sample_id: {"mask": to_json(encode(r))} for s, r in zip(samples(), recon, strict=True)
            }
            scored = score_masks(samples(), records, STANDARD, tmp_path)
            expected = report["per_length"][str(length)]
            assert scored.groups["all"]["gIoU"] == pytest.approx(expected["miou"], abs=1e-6)
            assert scored.groups["all"]["cIoU"] == pytest.approx(expected["ciou"], abs=1e-6)
    assert decode(encode(masks[0])).sum() == masks[0].sum()


def test_tokenizer_errors(tmp_path: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in (
        (["--tokenizer", str(tokenizer_dir)], "--tokenizer needs --masks"),
        (["--tokenizer", str(tmp_path), "--masks", "pngdir:x"], "is not a MaskTokenizer directory"),
        (["--tokenizer", str(tokenizer_dir), "--masks", "bogus:x", "--out", str(tmp_path / "o")], "bogus"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and message in err and err.count("\n") == 1, err
