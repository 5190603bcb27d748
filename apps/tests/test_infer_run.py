"""`uv run apps/infer` end to end on a tiny random HiMTokModel: outputs, batching, resume, sharding, bad input.

Random weights rarely write a mask; `--answer-prefix '<|mt_start|>'` starts every answer with one, and the
constrained generation then completes a well-formed 32-token span, so the mask paths run deterministically.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from himtok_apps.infer import cli, runner
from himtok_apps.infer.cli import main
from himtok_apps.infer.engine import DecodeOptions, Engine
from himtok_apps.infer.requests import Request
from himtok_apps.infer.writers import mask_of
from himtok_apps.training import distributed as D
from himtok_lmm_adapter import Segmentation
from himtok_prompt_templates import parse_response
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
MASK_FIRST = ["--answer-prefix", "<|mt_start|>", "--max-new-tokens", "36"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small images of different sizes and aspect ratios (different tile counts), and an unreadable one."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = {}
    for name, (h, w) in {"wide": (40, 120), "tall": (90, 50), "square": (64, 64), "small": (30, 44)}.items():
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        paths[name] = root / f"{name}.png"
        Image.fromarray(pixels).save(paths[name])
    paths["broken"] = root / "broken.jpg"
    paths["broken"].write_bytes(b"not an image")
    mask = np.zeros((64, 64), np.uint8)
    mask[10:40, 20:50] = 255
    paths["mask"] = root / "mask.png"
    Image.fromarray(mask).save(paths["mask"])
    return paths


def infer(*args: object) -> int:
    return main([str(a) for a in args] + ["--quiet", "--device", "cpu"])


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def write_requests(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_outputs_per_request_and_mask(tiny_himtok_dir: Path, images: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = [images["wide"], images["tall"]]
    assert (
        infer(
            "--model",
            tiny_himtok_dir,
            "--image",
            *paths,
            "--task",
            "rec",
            "--ref",
            "the thing",
            "--out",
            out,
            "--save-soft",
            "--all-lengths",
            "--num-tokens",
            "8",
            *MASK_FIRST,
        )
        == 0
    )
    lines = records(out)
    assert [r["id"] for r in lines] == ["wide", "tall"]
    for line, path in zip(lines, paths, strict=True):
        image = Image.open(path)
        assert line["error"] is None, line
        assert line["question"].startswith("First create the segmentation mask for <ref>the thing</ref>")
        assert line["answer"].startswith("<|mt_start|>") and line["size"] == [image.height, image.width]
        assert line["num_tokens"] == 8 and len(line["masks"]) == 1
        mask = line["masks"][0]
        assert len(mask["codes"]) == 32 and all(0 <= c < 1024 for c in mask["codes"])
        binary = mask_of(mask["rle"])
        assert binary.shape == (image.height, image.width) and int(binary.sum()) == mask["area"]
        png = np.asarray(Image.open(out / mask["files"]["mask"]))
        assert png.shape == binary.shape and set(np.unique(png)) <= {0, 255}
        assert np.array_equal(png > 0, binary)
        soft = np.asarray(Image.open(out / mask["files"]["soft"])).astype(np.float64) / 65535
        assert soft.shape == binary.shape
        assert np.array_equal(soft > 0.5, binary) or np.abs(soft - 0.5).min() < 1e-4
        assert Image.open(out / mask["files"]["overlay"]).size == image.size
        if binary.any():
            ys, xs = np.nonzero(binary)
            assert mask["box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        lengths = line["lengths"]
        assert len(lengths["iou_vs_full"]) == 32 and lengths["iou_vs_full"][-1] == 1.0
        strip = Image.open(out / lengths["file"])
        assert strip.width > strip.height  # 8 thumbnails per row, 4 rows
        timings = line["timings"]
        assert set(timings) >= {"load", "preprocess", "vision", "generate", "decode", "write", "total"}
        assert timings["preprocess"] > 0 and timings["vision"] > 0 and timings["generate"] > 0
        assert timings["decode"] > 0 and timings["write"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ran"] == 2 and summary["errors"] == 0 and summary["requests_per_second"] > 0
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["num_tokens"] == 8 and settings["dtype"] == "float32"


def test_a_batch_gives_what_one_at_a_time_gives(
    tiny_himtok_dir: Path, images: dict[str, Path], tmp_path: Path
) -> None:
    # Different sizes and tile counts: the batch is left-padded to different prompt lengths.
    paths = [images["wide"], images["tall"], images["square"], images["small"]]
    outs = {}
    for batch in (1, 3):
        outs[batch] = tmp_path / f"b{batch}"
        assert (
            infer(
                "--model",
                tiny_himtok_dir,
                "--image",
                *paths,
                "--prompt",
                "Segment <ref>it</ref>.",
                "--out",
                outs[batch],
                "--batch-size",
                batch,
                "--save-soft",
                *MASK_FIRST,
            )
            == 0
        )
    one, three = records(outs[1]), records(outs[3])
    assert [r["batch_size"] for r in three] == [3, 3, 3, 1]
    for a, b in zip(one, three, strict=True):
        assert a["answer"] == b["answer"] and a["error"] is None and b["error"] is None
        assert a["masks"][0]["codes"] == b["masks"][0]["codes"]
        soft_a = np.asarray(Image.open(outs[1] / a["masks"][0]["files"]["soft"])).astype(np.int64)
        soft_b = np.asarray(Image.open(outs[3] / b["masks"][0]["files"]["soft"])).astype(np.int64)
        assert np.abs(soft_a - soft_b).max() <= 8  # 1e-4 of the probability range
        mask_a, mask_b = mask_of(a["masks"][0]["rle"]), mask_of(b["masks"][0]["rle"])
        decided = np.abs(soft_a / 65535 - 0.5) > 1e-3
        assert np.array_equal(mask_a[decided], mask_b[decided])


def test_bad_input_is_recorded_and_the_run_goes_on(
    tiny_himtok_dir: Path, images: dict[str, Path], tmp_path: Path
) -> None:
    rows: list[dict[str, Any]] = [
        {"id": "ok", "image": str(images["square"]), "task": "res", "ref": "it"},
        {"id": "unreadable", "image": str(images["broken"]), "task": "res", "ref": "it"},
        {"id": "missing", "image": str(tmp_path / "nowhere.jpg"), "task": "res", "ref": "it"},
        {"id": "empty", "image": str(images["square"]), "prompt": ""},
        {"id": "markup", "image": str(images["square"]), "task": "res", "ref": "a <ref>b"},
        {
            "id": "mask2text",
            "image": str(images["square"]),
            "task": "mask2text",
            "mask": str(images["mask"]),
            "classes": ["a cat", "a dog"],
        },
        {
            "id": "nomask",
            "image": str(images["square"]),
            "task": "mask2text",
            "mask": str(images["broken"]),
            "classes": ["a cat"],
        },
    ]
    path = write_requests(tmp_path / "in.jsonl", rows)
    path.write_text(path.read_text() + "{broken json\n")
    out = tmp_path / "out"
    assert (
        infer("--model", tiny_himtok_dir, "--input", path, "--out", out, "--batch-size", 4, *MASK_FIRST) == 0
    )
    by_id = {r["id"]: r for r in records(out)}
    assert list(by_id) == [r["id"] for r in rows] + ["line-8"]
    assert by_id["ok"]["error"] is None and by_id["ok"]["masks"]
    assert "cannot read image" in by_id["unreadable"]["error"]
    assert "cannot read image" in by_id["missing"]["error"]
    assert by_id["empty"]["error"] == "empty prompt"
    assert "reserved markup" in by_id["markup"]["error"]
    assert "cannot read mask" in by_id["nomask"]["error"]
    assert "not JSON" in by_id["line-8"]["error"]
    # mask2text: the codes of the mask are in the question; a text answer needs no mask.
    assert by_id["mask2text"]["question"].count("<|mt_") == 34
    # Cut off: 10 new tokens cannot hold a 32-token span.
    cut = tmp_path / "cut"
    assert (
        infer(
            "--model",
            tiny_himtok_dir,
            "--image",
            images["square"],
            "--prompt",
            "Segment <ref>x</ref>.",
            "--out",
            cut,
            "--answer-prefix",
            "<|mt_start|>",
            "--max-new-tokens",
            "10",
        )
        == 0
    )
    [line] = records(cut)
    assert line["error"] == "the answer was cut off by max_new_tokens inside a mask" and line["masks"] == []
    # No prefix: the random model writes no mask, which is recorded.
    free = tmp_path / "free"
    assert (
        infer(
            "--model",
            tiny_himtok_dir,
            "--image",
            images["square"],
            "--prompt",
            "Segment <ref>x</ref>.",
            "--out",
            free,
            "--max-new-tokens",
            "6",
        )
        == 0
    )
    [line] = records(free)
    assert line["error"] == "the answer holds no mask and was cut off by max_new_tokens"


def test_resume_skips_done_ids_and_keeps_input_order(
    tiny_himtok_dir: Path, images: dict[str, Path], tmp_path: Path
) -> None:
    names = ["wide", "tall", "square", "small"]
    rows = [{"id": n, "image": str(images[n]), "task": "res", "ref": "it"} for n in names]
    rows.insert(2, {"id": "bad", "image": str(images["broken"]), "task": "res", "ref": "it"})
    out = tmp_path / "out"
    first = write_requests(tmp_path / "first.jsonl", [rows[3], rows[0]])
    assert infer("--model", tiny_himtok_dir, "--input", first, "--out", out, *MASK_FIRST) == 0
    before = {r["id"]: r for r in records(out)}
    # A line torn by a kill is dropped, not glued onto the next one.
    with (out / "results.jsonl").open("a") as handle:
        handle.write('{"id": "tall", "answer": "tor')
    every = write_requests(tmp_path / "all.jsonl", rows)
    assert infer("--model", tiny_himtok_dir, "--input", every, "--out", out, *MASK_FIRST) == 0
    after = records(out)
    assert [r["id"] for r in after] == [r["id"] for r in rows]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["skipped"], summary["ran"], summary["errors"]) == (2, 3, 1)
    for ident, record in before.items():
        assert {r["id"]: r for r in after}[ident] == record  # untouched
    # --retry-errors reruns only the failed request; the image is readable now.
    shutil.copy(images["small"], images["broken"].parent / "fixed.png")
    rows[2]["image"] = str(images["broken"].parent / "fixed.png")
    write_requests(every, rows)
    assert (
        infer("--model", tiny_himtok_dir, "--input", every, "--out", out, "--retry-errors", *MASK_FIRST) == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["skipped"], summary["ran"], summary["errors"]) == (4, 1, 0)
    assert [r["id"] for r in records(out)] == [r["id"] for r in rows]
    # Other settings on the same folder would mix two configurations: refused.
    with pytest.raises(SystemExit) as exit_:
        infer("--model", tiny_himtok_dir, "--input", every, "--out", out, "--num-tokens", "4", *MASK_FIRST)
    assert exit_.value.code == 2


def test_shards_merge_in_input_order(
    tiny_himtok_dir: Path, images: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ranks run in turn in this process (no process group): each writes its shard, rank 0 merges."""
    names = ["wide", "tall", "square", "small", "wide"]
    rows = [
        {"id": f"{i}-{n}", "image": str(images[n]), "task": "res", "ref": "it"} for i, n in enumerate(names)
    ]
    path = write_requests(tmp_path / "in.jsonl", rows)
    single = tmp_path / "single"
    assert infer("--model", tiny_himtok_dir, "--input", path, "--out", single, *MASK_FIRST) == 0
    sharded = tmp_path / "sharded"
    monkeypatch.setattr(D, "barrier", lambda info: None)
    # Real ranks read the finished ids before any of them writes (a barrier); here rank 1 has finished first.
    monkeypatch.setattr(runner, "done_ids", lambda out, retry_errors=False: set())
    for rank in (1, 0):
        info = D.DistInfo(rank=rank, world_size=2, local_rank=rank, device=torch.device("cpu"))
        monkeypatch.setattr(runner, "_dist_info", lambda config, info=info: info)
        assert infer("--model", tiny_himtok_dir, "--input", path, "--out", sharded, *MASK_FIRST) == 0
        if rank == 1:
            shard = [json.loads(x) for x in (sharded / "results.jsonl.rank1").read_text().splitlines()]
            assert [r["id"] for r in shard] == ["1-tall", "3-small"]
    assert not list(sharded.glob("results.jsonl.rank*"))
    merged, alone = records(sharded), records(single)
    assert [r["id"] for r in merged] == [r["id"] for r in rows]
    for a, b in zip(merged, alone, strict=True):
        assert (a["answer"], a["masks"][0]["codes"]) == (b["answer"], b["masks"][0]["codes"])


def test_existence_and_text_answers_are_not_errors(tiny_himtok_dir: Path) -> None:
    from himtok_lmm_adapter import HiMTokModel

    engine = Engine.__new__(Engine)  # judge() reads nothing from the model

    def segmentation(answer: str, finished: bool = True) -> Segmentation:
        return Segmentation(
            answer, [], [], (8, 8), parse_response(answer), [], finished, "the answer holds no mask"
        )

    def request(task: str) -> Request:
        return Request(id="x", index=0, image="x.png", task=task, ref="cat")

    assert engine.judge(request("gres"), segmentation("No, there is no cat in the image.")) == (None, False)
    assert engine.judge(request("openvocab"), segmentation("No. I cannot find cat here.")) == (None, False)
    assert engine.judge(request("gres"), segmentation("Yes, but")) == ("the answer holds no mask", True)
    assert engine.judge(request("res"), segmentation("No.")) == ("the answer holds no mask", None)
    assert engine.judge(request("mask2text"), segmentation("B. <ref>a dog</ref>")) == (None, None)
    assert engine.judge(request("mask2text"), segmentation("B. <ref>a", finished=False))[0] is not None
    model = HiMTokModel.from_pretrained(tiny_himtok_dir)
    with pytest.raises(ValueError, match=r"1\.\.32"):
        Engine(model, DecodeOptions(num_tokens=33))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "a.jpg"], "either --prompt TEXT or --task T"),
        (["--image", "a.jpg", "--prompt", "q", "--task", "res"], "either --prompt TEXT or --task T"),
        (["--image", "a.jpg", "--task", "res"], "--task res needs --ref"),
        (["--image", "a.jpg", "--task", "mask2text", "--mask", "m.png"], "needs --classes"),
        (["--image", "a.jpg", "--task", "res", "--ref", "x", "--box", "1,2,3,4"], "does not use --box"),
        (["--image", "a.jpg", "--task", "box2mask", "--box", "1,2,3"], "needs 4 numbers"),
        (["--image", "a.jpg", "--prompt", " "], "--prompt is empty"),
        (["--image", "a.jpg", "--prompt", "q", "--num-tokens", "33"], "1..32"),
        (["--image", "a.jpg", "--prompt", "q", "--device", "tpu"], "--device must be"),
        (["--image", "a.jpg", "--prompt", "q", "--dtype", "fp8"], "invalid choice"),
        (["--input", "x.jsonl", "--prompt", "q"], "--input takes its requests from the file"),
        (["--prompt", "q"], "need --image"),
        (["--refine", "sam", "--image", "a.jpg", "--prompt", "q"], "not available yet"),
        (["--sam", "d", "--image", "a.jpg", "--prompt", "q"], "only used with --refine"),
        (
            ["--refine", "sam", "--sam", "nowhere", "--image", "a.jpg", "--prompt", "q"],
            "--sam nowhere does not exist",
        ),
        (["--model", "nowhere", "--image", "a.jpg", "--prompt", "q"], "not a HiMTokModel directory"),
    ],
)
def test_bad_flags_fail_with_one_line(
    args: list[str],
    message: str,
    tiny_himtok_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import himtok_sam_refiner

    if "not available yet" in message:  # as before the refiner package was built
        monkeypatch.delattr(himtok_sam_refiner, "SamRefiner", raising=False)
    full = args if "--model" in args else ["--model", str(tiny_himtok_dir), *args]
    with pytest.raises(SystemExit) as exit_:
        main(full)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("infer: error:") and message in err, err


def test_refine_with_a_tiny_sam(tiny_himtok_dir: Path, images: dict[str, Path], tmp_path: Path) -> None:
    from himtok_sam_refiner import tiny_sam

    sam = tmp_path / "sam"
    tiny_sam().save_pretrained(sam)
    plain, refined = tmp_path / "plain", tmp_path / "refined"
    common = [
        "--model",
        tiny_himtok_dir,
        "--image",
        images["wide"],
        images["tall"],
        "--task",
        "res",
        "--ref",
        "x",
    ]
    assert infer(*common, "--out", plain, *MASK_FIRST) == 0
    assert infer(*common, "--out", refined, "--refine", "sam", "--sam", sam, *MASK_FIRST) == 0
    for before, after in zip(records(plain), records(refined), strict=True):
        assert after["error"] is None and after["masks"][0]["codes"] == before["masks"][0]["codes"]
        note = after["masks"][0]["refine"]
        assert set(note) == {"sam_iou", "fallback", "agreement"}
        assert mask_of(after["masks"][0]["rle"]).shape == tuple(after["size"])
        assert after["timings"]["refine"] > 0 and "refine" not in before["masks"][0]


def test_without_the_demo_model_it_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(cli, "DEFAULT_MODEL", tmp_path / "demo-model")
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "demo model is not shipped yet" in err and "--model DIR" in err


@pytest.mark.parametrize("name", ["DEMO_REQUESTS", "DEMO_MODEL_REQUESTS"])
def test_demo_requests_are_valid(name: str) -> None:
    from himtok_apps.infer import config
    from himtok_apps.infer.requests import requests_from_jsonl

    requests = requests_from_jsonl(getattr(config, name))
    assert requests and all(r.error is None and Path(r.image or "").is_file() for r in requests)


@pytest.mark.slow
def test_torchrun_two_processes(tiny_himtok_dir: Path, images: dict[str, Path], tmp_path: Path) -> None:
    rows = [
        {"id": n, "image": str(images[n]), "task": "res", "ref": "it"} for n in ["wide", "tall", "square"]
    ]
    path = write_requests(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        str(REPO / "apps" / "infer"),
        "--model",
        str(tiny_himtok_dir),
        "--input",
        str(path),
        "--out",
        str(out),
        "--quiet",
        *MASK_FIRST,
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["id"] for r in records(out)] == ["wide", "tall", "square"]
    assert all(r["error"] is None for r in records(out))
    assert "2 processes" in done.stderr


def test_no_arguments_segments_the_demo_scenes_with_the_shipped_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from himtok_apps.infer.config import DEFAULT_MODEL, DEMO_MODEL_REQUESTS

    if not (DEFAULT_MODEL / "himtok.json").is_file():
        pytest.skip("the demo model is not shipped")
    # the default output folder is runs/infer-<timestamp>/ under the working directory
    monkeypatch.chdir(tmp_path)
    assert main(["--threads", "1", "--quiet"]) == 0
    [out] = list((tmp_path / "runs").iterdir())
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    expected = [json.loads(line)["id"] for line in DEMO_MODEL_REQUESTS.read_text().splitlines()]
    assert [line["id"] for line in lines] == expected
    assert any(line["masks"] for line in lines), "the demo model writes masks"
