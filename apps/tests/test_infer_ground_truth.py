"""`apps/infer` with ground truth: a request's `gt` mask scores its answer with and without `--refine sam`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from himtok_apps.infer.cli import main
from himtok_apps.infer.ground_truth import summarize
from himtok_apps.infer.requests import request_from_json
from himtok_apps.infer.writers import mask_of
from PIL import Image

MASK_FIRST = ["--answer-prefix", "<|mt_start|>", "--max-new-tokens", "36"]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.fixture(scope="module")
def requests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three requests with a gt (0/255 PNG, 0/1 PNG, a gt of the wrong size) and one without."""
    root = tmp_path_factory.mktemp("gt-requests")
    rng = np.random.default_rng(0)
    rows = []
    for name, (h, w) in {"wide": (40, 120), "square": (64, 64), "wrong": (50, 50), "plain": (48, 32)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / f"{name}.png")
        gt = np.zeros((h, w) if name != "wrong" else (h + 1, w), np.uint8)
        gt[h // 4 : 3 * h // 4, w // 5 : 4 * w // 5] = 1 if name == "square" else 255
        Image.fromarray(gt).save(root / f"{name}-gt.png")
        row = {"id": name, "image": f"{name}.png", "task": "res", "ref": "the thing"}
        rows.append(row if name == "plain" else {**row, "gt": f"{name}-gt.png"})
    path = root / "requests.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run(model: Path, requests: Path, out: Path, *extra: object) -> dict[str, dict]:
    args = ["--model", model, "--input", requests, "--out", out, *MASK_FIRST, *extra]
    assert main([str(a) for a in args] + ["--quiet", "--device", "cpu"]) == 0
    return {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_ground_truth_scores_with_and_without_refinement(
    tiny_himtok_dir: Path, requests: Path, tmp_path: Path
) -> None:
    from himtok_sam_refiner import tiny_sam

    sam = tmp_path / "sam"
    tiny_sam().save_pretrained(sam)
    plain = run(tiny_himtok_dir, requests, tmp_path / "plain")
    refined = run(tiny_himtok_dir, requests, tmp_path / "refined", "--refine", "sam", "--sam", sam)
    folder = requests.parent
    for name in ("wide", "square"):
        gt = np.asarray(Image.open(folder / f"{name}-gt.png")) > 0  # the 0/1 PNG counts as a mask too
        assert gt.any()
        before, after = plain[name], refined[name]
        assert before["error"] is None and before["gt"].endswith(f"{name}-gt.png")
        assert set(before["ground_truth"]) == {"unrefined"}
        assert set(after["ground_truth"]) == {"unrefined", "refined"}
        # the unrefined score is the plain run's answer; the refined one is what the refined run wrote
        unrefined = np.logical_or.reduce([mask_of(m["rle"]) for m in before["masks"]])
        written = np.logical_or.reduce([mask_of(m["rle"]) for m in after["masks"]])
        assert after["ground_truth"]["unrefined"] == before["ground_truth"]["unrefined"]
        assert after["ground_truth"]["unrefined"]["iou"] == pytest.approx(iou(unrefined, gt), abs=1e-4)
        assert after["ground_truth"]["refined"]["iou"] == pytest.approx(iou(written, gt), abs=1e-4)
        assert after["ground_truth"]["refined"]["union"] == int(np.logical_or(written, gt).sum())
    assert "ground_truth" not in refined["plain"] and refined["plain"]["error"] is None
    wrong = refined["wrong"]
    assert "51x50 but its image is 50x50" in wrong["error"] and "ground_truth" not in wrong
    summary = json.loads((tmp_path / "refined" / "summary.json").read_text())["ground_truth"]
    scored = [refined[n]["ground_truth"] for n in ("wide", "square")]
    assert summary == summarize(refined.values()) and summary["requests"] == 2
    for kind in ("unrefined", "refined"):
        assert summary[kind]["miou"] == pytest.approx(np.mean([s[kind]["iou"] for s in scored]), abs=1e-4)
        inter, union = (sum(s[kind][k] for s in scored) for k in ("intersection", "union"))
        assert summary[kind]["ciou"] == pytest.approx(inter / union, abs=1e-4)
    assert "ground_truth" in json.loads((tmp_path / "plain" / "summary.json").read_text())


def test_summary_of_empty_answers_and_no_ground_truth() -> None:
    empty = {"iou": 1.0, "intersection": 0, "union": 0}
    miss = {"iou": 0.0, "intersection": 0, "union": 10}
    summary = summarize([{"ground_truth": {"unrefined": empty}}, {"ground_truth": {"unrefined": miss}}, {}])
    assert summary == {"requests": 2, "unrefined": {"requests": 2, "miou": 0.5, "ciou": 0.0}}
    assert summarize([{"id": "x"}]) is None


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            {"task": "mask2text", "mask": "m.png", "classes": "a,b", "gt": "g.png"},
            "no mask to compare with gt",
        ),
        ({"task": "openvocab", "classes": "a,b", "gt": "g.png"}, "one gres request per class"),
        ({"task": "res", "ref": "x", "gt": 3}, "gt must be the path"),
    ],
)
def test_requests_refuse_a_gt_they_cannot_use(row: dict, problem: str, tmp_path: Path) -> None:
    request = request_from_json(json.dumps({"id": "r", "image": "a.png", **row}), 1, tmp_path)
    assert request.error is not None and problem in request.error
