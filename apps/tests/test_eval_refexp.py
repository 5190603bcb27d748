"""apps/eval on the 24 real referring expressions of ../shared/data/refexp (real COCO polygons and images),
laid out as a REFER-layout RefCOCO; skipped without ../shared."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from himtok_apps.eval import STANDARD, build_samples, load_benchmark, main
from himtok_apps.eval.boxes import xywh_to_xyxy
from himtok_apps.eval.synthetic import oracle_predictions, write_predictions
from himtok_prompt_templates import format_box


@pytest.fixture(scope="module")
def refexp_root(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = [
        json.loads(x) for x in (shared_dir / "data/refexp/refcocos-24.jsonl").read_text().splitlines() if x
    ]
    coco = {
        s: json.loads((shared_dir / f"data/coco-subset/instances_{s}.json").read_text())
        for s in ("train", "val")
    }
    anns = {(s, a["id"]): a for s, data in coco.items() for a in data["annotations"]}
    images = {i["id"]: i for data in coco.values() for i in data["images"]}
    refs, used = [], []
    for n, line in enumerate(lines):
        ann = anns[line["split"], line["ann_id"]]
        used.append(ann)
        sentence = {
            "sent_id": 5000 + n,
            "raw": line["expression"],
            "sent": line["expression"].lower(),
            "tokens": [],
        }
        refs.append({"ref_id": n, "ann_id": ann["id"], "image_id": ann["image_id"], "split": "val",
                     "category_id": ann["category_id"], "sentences": [sentence], "file_name": "ignored.jpg"})  # fmt: skip
    root = tmp_path_factory.mktemp("refexp")
    (root / "refcoco").mkdir()
    (root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs))
    instances = {"images": [images[i] for i in {a["image_id"] for a in used}], "annotations": used}
    (root / "refcoco" / "instances.json").write_text(json.dumps(instances))
    return root


def test_real_expressions_oracle_and_boxes(
    refexp_root: Path, shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = shared_dir / "data/coco-subset/images"
    bench = load_benchmark("refcoco", "val", refexp_root, image_dir=images)
    samples = build_samples(bench, STANDARD)
    assert len(samples) == 24 and all(s.ref.image_path.is_file() for s in samples)
    lines = [
        json.loads(x) for x in (shared_dir / "data/refexp/refcocos-24.jsonl").read_text().splitlines() if x
    ]
    for sample, line in zip(samples, lines, strict=True):
        assert sample.ref.box_xywh is not None
        assert xywh_to_xyxy(sample.ref.box_xywh) == pytest.approx(line["bbox"], abs=0.02)

    base = [
        "--benchmark",
        "refcoco",
        "--split",
        "val",
        "--data-root",
        str(refexp_root),
        "--image-dir",
        str(images),
    ]
    preds = write_predictions(tmp_path / "oracle.jsonl", oracle_predictions(refexp_root))
    out = tmp_path / "res"
    assert main([*base, "--predictions", str(preds), "--out", str(out)]) == 0
    (row,) = json.loads((out / "report.json").read_text())["results"]
    assert row["gIoU"] == 1.0 and row["cIoU"] == 1.0 and row["n_empty_gt"] == 0 and row["n_samples"] == 24

    empty = write_predictions(
        tmp_path / "empty.jsonl", [{"sample_id": s.sample_id, "mask": None} for s in samples]
    )
    assert main([*base, "--predictions", str(empty), "--out", str(tmp_path / "empty"), "--gallery", "0"]) == 0
    (row,) = json.loads((tmp_path / "empty" / "report.json").read_text())["results"]
    assert row["gIoU"] == 0.0 and row["cIoU"] == 0.0 and row["n_empty_pred"] == 24

    answers = [
        {"sample_id": s.sample_id, "answer": format_box(xywh_to_xyxy(s.ref.box_xywh), s.width, s.height)}
        for s in samples
    ]  # type: ignore[arg-type]
    boxes = write_predictions(tmp_path / "rec.jsonl", answers)
    rec = tmp_path / "rec"
    assert (
        main(
            [
                *base,
                "--predictions",
                str(boxes),
                "--task",
                "rec",
                "--protocol",
                "standard",
                "himtok-official",
                "--out",
                str(rec),
                "--gallery",
                "0",
            ]
        )
        == 0
    )
    for row in json.loads((rec / "report.json").read_text())["results"]:
        # grid rounding moves each corner by at most half a cell: tiny targets still overlap >= 0.7
        assert row["acc@0.5"] == 1.0 and row["acc@0.7"] == 1.0 and row["n_unparsed"] == 0
    capsys.readouterr()
