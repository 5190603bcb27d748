"""``apps/eval`` end to end: --predictions (RLE, PNG, REC answers) on each benchmark, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from himtok_apps.eval import OFFICIAL, STANDARD, build_samples, ground_truth, load_benchmark, main
from himtok_apps.eval.boxes import xywh_to_xyxy
from himtok_apps.eval.masks import decode, to_json
from himtok_apps.eval.synthetic import (
    oracle_predictions,
    write_grefcoco,
    write_predictions,
    write_reasonseg,
    write_refer,
)
from himtok_prompt_templates import format_box
from PIL import Image


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def results(out: Path) -> dict[tuple[str, str, str], dict]:
    report = json.loads((out / "report.json").read_text())
    return {(r["split"], r["subset"], r["protocol"]): r for r in report["results"]}


def test_oracle_predictions_score_one_in_both_protocols(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_refer(tmp_path / "data", "refcoco", "pickle")
    bench = load_benchmark("refcoco", "val", data)
    per_object = [
        {"sample_id": s.sample_id, "mask": to_json(ground_truth(s.ref).fg)}
        for s in build_samples(bench, OFFICIAL)
    ]
    preds = write_predictions(tmp_path / "preds.jsonl", oracle_predictions(data) + per_object)
    out = tmp_path / "out"
    argv = ["--benchmark", "refcoco", "--split", "val", "--data-root", str(data), "--predictions", str(preds)]
    code, stdout, _ = run([*argv, "--protocol", "standard", "himtok-official", "--out", str(out)], capsys)
    assert code == 0
    got = results(out)
    assert (
        got["val", "all", "standard"]["n_samples"] == 4
        and got["val", "all", "himtok-official"]["n_samples"] == 2
    )
    for row in got.values():
        assert (
            row["gIoU"] == pytest.approx(1.0) and row["cIoU"] == pytest.approx(1.0) and row["Pr@0.9"] == 1.0
        )
        assert row["n_images"] == 1 and row["n_empty_gt"] == 0
    report = json.loads((out / "report.json").read_text())
    assert report["protocols"]["standard"]["ignore_label"] == "255 excluded"
    assert report["protocols"]["himtok-official"]["compat"] == "himtok-official"
    assert len(report["annotation_files"]) == 2
    table = (out / "report.md").read_text()
    assert (
        "## refcoco val (segmentation)" in table
        and "| himtok-official | all | 2 | 1 | 100.00 | 100.00 |" in table
    )
    assert "| standard | all | 4 |" in stdout
    rows = [
        json.loads(line)
        for line in (out / "refcoco-val" / "standard" / "samples.jsonl").read_text().splitlines()
    ]
    assert [r["sample_id"] for r in rows] == ["100:1000", "100:1001", "101:1002", "101:1003"]
    assert all(r["IoU"] == 1.0 and r["I"] == r["U"] > 0 for r in rows)
    assert Image.open(out / "refcoco-val" / "himtok-official" / "gallery.png").size[0] > 100


def test_grefcoco_empty_predictions_accept_every_no_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_grefcoco(tmp_path / "data")
    ids = [s.sample_id for s in build_samples(load_benchmark("grefcoco", "val", data), STANDARD)]
    preds = write_predictions(tmp_path / "empty.jsonl", [{"sample_id": i, "mask": None} for i in ids])
    out = tmp_path / "out"
    argv = [
        "--benchmark",
        "grefcoco",
        "--split",
        "val",
        "--data-root",
        str(data),
        "--predictions",
        str(preds),
        "--out",
        str(out),
    ]
    assert run(argv, capsys)[0] == 0
    row = results(out)["val", "all", "standard"]
    assert row["N_acc"] == 1.0 and row["T_acc"] == 0.0
    assert row["nt_counts"] == {"TP": 2, "FN": 0, "FP": 2, "TN": 0}
    assert row["gIoU"] == 0.5 and row["cIoU"] == 0.0
    assert json.loads((out / "report.json").read_text())["protocols"]["standard"]["nt_rule"] == "empty-mask"
    assert "N-acc | T-acc" in (out / "report.md").read_text()


def test_reasonseg_png_predictions_ignore_counted_two_ways(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_reasonseg(tmp_path / "data")
    samples = build_samples(load_benchmark("reasonseg", "val", data), STANDARD)
    records = []
    for sample in samples:
        mask = decode(ground_truth(sample.ref).fg).astype(np.uint8)
        if sample.sample_id == "a":
            mask[6:] = 0  # keep rows 2..5 of the 8x8 target: 32 of 64 pixels
        Image.fromarray(mask * 255).save(tmp_path / f"{sample.sample_id}.png")
        records.append({"sample_id": sample.sample_id, "mask": f"{sample.sample_id}.png"})
    preds = write_predictions(tmp_path / "preds.jsonl", records)
    out = tmp_path / "out"
    argv = [
        "--benchmark",
        "reasonseg",
        "--split",
        "val",
        "--data-root",
        str(data),
        "--predictions",
        str(preds),
    ]
    assert run([*argv, "--protocol", "standard", "himtok-official", "--out", str(out)], capsys)[0] == 0
    got = results(out)
    # a: standard 32 / 64; official (ignore strip of 100 pixels counted as hit) (32 + 100) / (64 + 100)
    a_std = 32 / 64
    a_off = 132 / 164
    assert got["val", "short", "standard"]["gIoU"] == pytest.approx((a_std + 1.0) / 2)
    assert got["val", "short", "himtok-official"]["gIoU"] == pytest.approx((a_off + 1.0) / 2)
    # b: the target without its ignore square is perfect either way (officially the square becomes a hit)
    assert got["val", "long", "standard"]["gIoU"] == 1.0
    assert got["val", "long", "himtok-official"]["gIoU"] == pytest.approx(1.0)
    assert got["val", "all", "standard"]["cIoU"] == pytest.approx((32 + 336 + 75) / (64 + 336 + 75))
    assert (
        got["val", "all", "standard"]["n_samples"] == 3 and got["val", "long", "standard"]["n_samples"] == 1
    )


def test_rec_answers_from_the_prompt_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_refer(tmp_path / "data", "refcoco", "json")
    samples = build_samples(load_benchmark("refcoco", "val", data), STANDARD, "rec")
    records = [
        {
            "sample_id": s.sample_id,
            "answer": f"<|mt_start|><|mt_1|><|mt_end|> {format_box(xywh_to_xyxy(s.ref.box_xywh), s.width, s.height)}",
        }
        for s in samples
    ]
    records[-1]["answer"] = "I cannot find it."
    preds = write_predictions(tmp_path / "rec.jsonl", records)
    out = tmp_path / "out"
    argv = [
        "--benchmark",
        "refcoco",
        "--split",
        "val",
        "--data-root",
        str(data),
        "--predictions",
        str(preds),
        "--task",
        "rec",
    ]
    assert run([*argv, "--protocol", "standard", "himtok-official", "--out", str(out)], capsys)[0] == 0
    for protocol in ("standard", "himtok-official"):
        row = results(out)["val", "all", protocol]
        assert row["acc@0.5"] == 0.75 and row["n_unparsed"] == 1 and row["grid"] == 999
    assert (out / "refcoco-val" / "standard-rec" / "gallery.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--benchmark", "refcoco", "--split", "val"], "--data-root is required"),
        (["--masks", "pngdir:x"], "--masks goes with --tokenizer"),
        (["--benchmark", "grefcoco", "--split", "val", "--task", "rec"], "--task rec needs boxes"),
    ],
)
def test_bad_flags_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    preds = write_predictions(tmp_path / "p.jsonl", [])
    if "--data-root" not in message:
        extra = [*extra, "--data-root", str(tmp_path)]
    code, _, err = run(["--predictions", str(preds), *extra], capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_refer(tmp_path / "data", "refcoco", "pickle")
    base = [
        "--benchmark",
        "refcoco",
        "--split",
        "val",
        "--data-root",
        str(data),
        "--out",
        str(tmp_path / "o"),
    ]
    cases = {
        "missing": (
            [{"sample_id": "100:1000", "mask": None}],
            "3 of 4 samples have no prediction (100:1001, 101:1002, 101:1003)",
        ),
        "unknown": (
            [*oracle_predictions(data), {"sample_id": "999:1", "mask": None}],
            "1 sample ids that no asked split",
        ),
        "size": (
            [{**r, "mask": {"size": [2, 2], "counts": [4]}} for r in oracle_predictions(data)],
            "sample 100:1000: mask is 2x2 (HxW) but the image is 30x40",
        ),
        "dup": (
            [*oracle_predictions(data), oracle_predictions(data)[0]],
            "sample_id '100:1000' again (first on line 1)",
        ),
    }
    for name, (records, message) in cases.items():
        preds = write_predictions(tmp_path / f"{name}.jsonl", records)
        code, _, err = run([*base, "--predictions", str(preds)], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (name, err)
    code, _, err = run([*base, "--predictions", str(tmp_path / "nope.jsonl")], capsys)
    assert code == 2 and "does not exist" in err
    elsewhere = [*base[:4], "--data-root", str(tmp_path), *base[6:]]
    code, _, err = run([*elsewhere, "--predictions", str(preds)], capsys)
    assert code == 2 and "refs(unc).p" in err and err.count("\n") == 1
    code, _, err = run([*base, "--model", str(tmp_path)], capsys)
    assert code == 2 and f"expected {tmp_path / 'himtok.json'}" in err
