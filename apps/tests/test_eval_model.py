"""``apps/eval --model``: a tiny random HiMTokModel end to end, resume, reuse across protocols, and sharding."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from himtok_apps.eval import STANDARD, build_samples, load_benchmark, main, question
from himtok_apps.eval import runner as runner_module
from himtok_apps.eval.runner import GenerationOptions, predict
from himtok_apps.eval.synthetic import write_reasonseg, write_refer
from himtok_apps.jsonl_shards import read_records, shard_path
from himtok_apps.training.distributed import DistInfo
from himtok_lmm_adapter import HiMTokModel, tiny_himtok_model

torch.set_num_threads(1)

# Small enough that 32 decodes stay cheap on one core.
SMALL_TOKENIZER = {"encoder_width": 32, "decoder_width": 32, "encoder_heads": 2, "decoder_heads": 2,
                   "encoder_depth": 1, "decoder_depth": 1, "head_hidden": 32, "z_channels": 16}  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_himtok_model(seed=0, **SMALL_TOKENIZER).save_pretrained(
        tmp_path_factory.mktemp("tiny") / "model"
    )


def count_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap HiMTokModel.segment to record the batch size of each call."""
    calls: list[int] = []
    original = HiMTokModel.segment

    def counted(self: HiMTokModel, images: Any, prompts: Any, **kwargs: Any) -> Any:
        calls.append(len(images))
        return original(self, images, prompts, **kwargs)

    monkeypatch.setattr(HiMTokModel, "segment", counted)
    return calls


def test_model_end_to_end_and_resume(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_refer(tmp_path / "data", "refcoco", "pickle")
    out = tmp_path / "out"
    argv = [
        "--benchmark", "refcoco", "--split", "val", "--data-root", str(data), "--model", str(model_dir),
        "--protocol", "standard", "himtok-official", "--out", str(out), "--batch-size", "3",
        "--max-new-tokens", "40", "--answer-prefix", "<|mt_start|>", "--device", "cpu", "--num-tokens", "8",
    ]  # fmt: skip
    calls = count_calls(monkeypatch)
    assert main(argv) == 0
    assert calls == [3, 1, 2], "4 standard samples in batches of 3, then 2 objects"
    predictions = out / "refcoco-val" / "standard" / "predictions.jsonl"
    lines = read_records(predictions)
    assert [r["sample_id"] for r in lines] == ["100:1000", "100:1001", "101:1002", "101:1003"]
    for line in lines:
        assert (
            line["mask"]["size"] == [30, 40]
            and line["answer"].startswith("<|mt_start|>")
            and line["num_tokens"] == 8
        )
    assert lines[0]["prompt"] == "Segment <ref>left square</ref>."
    official = read_records(out / "refcoco-val" / "himtok-official" / "predictions.jsonl")
    assert [r["sample_id"] for r in official] == ["100", "101"] and "Meet all the descriptions" in official[
        0
    ]["prompt"]
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["generation"]["num_tokens"] == 8
    assert {(r["protocol"], r["n_samples"]) for r in report["results"]} == {
        ("standard", 4),
        ("himtok-official", 2),
    }
    first = (out / "report.json").read_text()

    # Rerun: nothing left to generate, the same report.
    calls.clear()
    assert main(argv) == 0
    assert calls == []
    assert json.loads((out / "report.json").read_text())["results"] == json.loads(first)["results"]

    # A run killed mid-write: the last line torn, one line missing; only that sample is generated again.
    text = predictions.read_text().splitlines(keepends=True)
    predictions.write_text("".join(text[:2]) + text[2][:25])
    calls.clear()
    assert main(argv) == 0
    assert calls == [2]
    assert [r["sample_id"] for r in read_records(predictions)] == [
        "100:1000",
        "100:1001",
        "101:1002",
        "101:1003",
    ]
    assert json.loads((out / "report.json").read_text())["results"] == json.loads(first)["results"]
    assert not list(predictions.parent.glob("*.rank*"))
    capsys.readouterr()


def test_same_prompts_are_generated_once_across_protocols(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_reasonseg(tmp_path / "data")
    calls = count_calls(monkeypatch)
    argv = [
        "--benchmark", "reasonseg", "--split", "val", "--data-root", str(data), "--model", str(model_dir),
        "--protocol", "standard", "himtok-official", "--out", str(tmp_path / "out"), "--device", "cpu",
        "--max-new-tokens", "40", "--answer-prefix", "<|mt_start|>", "--gallery", "0",
    ]  # fmt: skip
    assert main(argv) == 0
    assert calls == [3], (
        "ReasonSeg asks the same questions under both protocols: the second run reuses the first"
    )
    official = read_records(tmp_path / "out" / "reasonseg-val" / "himtok-official" / "predictions.jsonl")
    assert [r["sample_id"] for r in official] == ["a", "b", "c"]
    assert official[2]["mask"]["size"] == [12, 20], "masks at the upright (EXIF-rotated) image size"


class FakeModel:
    """Answers each prompt with a mask that depends only on the prompt: a stand-in for a deterministic model."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.lock = threading.Lock()

    def segment(self, images: list[Any], prompts: list[str], **_: Any) -> list[Any]:
        out = []
        for image, prompt in zip(images, prompts, strict=True):
            with self.lock:
                self.seen.append(prompt)
            width, height = image.size
            mask = torch.zeros(height, width, dtype=torch.bool)
            mask[: 1 + len(prompt) % height] = True
            out.append(type("R", (), {"mask": mask, "answer": prompt[::-1], "error": None})())
        return out


def test_sharded_run_merges_in_input_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_refer(tmp_path / "data", "refcoco", "pickle")
    samples = [
        s
        for split in ("val", "testA", "testB")
        for s in build_samples(load_benchmark("refcoco", split, data), STANDARD)
    ]
    questions = [question(s, STANDARD) for s in samples]
    options = GenerationOptions(batch_size=2)

    single = tmp_path / "single" / "predictions.jsonl"
    alone = FakeModel()
    expected = predict(alone, samples, questions, single, options, DistInfo(), progress=False)
    assert expected is not None and len(expected) == len(samples) == 6

    barrier = threading.Barrier(2)
    monkeypatch.setattr(runner_module.D, "barrier", lambda info: barrier.wait() if info.enabled else None)
    sharded = tmp_path / "sharded" / "predictions.jsonl"
    model = FakeModel()
    merged: dict[int, Any] = {}

    def rank(r: int) -> None:
        merged[r] = predict(
            model, samples, questions, sharded, options, DistInfo(rank=r, world_size=2), progress=False
        )

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert merged[1] is None and merged[0] is not None
    assert sorted(model.seen) == sorted(questions), "every sample generated exactly once across the ranks"
    assert read_records(sharded) == read_records(single), "merged in input order, identical to one process"
    assert not shard_path(sharded, 0).exists() and not shard_path(sharded, 1).exists()


def test_unreadable_image_is_recorded_not_fatal(tmp_path: Path) -> None:
    data = write_refer(tmp_path / "data", "refcoco", "pickle")
    samples = build_samples(load_benchmark("refcoco", "testA", data), STANDARD)
    samples[0].ref.image_path.write_bytes(b"not an image")
    got = predict(
        FakeModel(),
        samples,
        [question(s, STANDARD) for s in samples],
        tmp_path / "p.jsonl",
        GenerationOptions(),
        DistInfo(),
        progress=False,
    )
    assert got is not None
    record = got[samples[0].sample_id]
    assert record["mask"] is None and record["error"].startswith("unreadable image")
    assert record["prompt"] == "Segment <ref>person on the left</ref>."


def test_a_mask_at_another_size_is_brought_to_the_annotation_size(tmp_path: Path) -> None:
    from himtok_apps.eval.masks import decode, from_json
    from himtok_apps.eval.runner import _mask_record

    data = write_refer(tmp_path / "data", "refcoco", "pickle")
    sample = build_samples(load_benchmark("refcoco", "val", data), STANDARD)[0]  # annotated as 30 x 40
    small = torch.zeros(3, 4, dtype=torch.bool)
    small[0, 0] = True
    record, resized_from = _mask_record(small, sample)
    assert resized_from == [3, 4] and record is not None and record["size"] == [30, 40]
    mask = decode(from_json(record, 30, 40))
    assert mask[:10, :10].all() and mask.sum() == 100, "nearest: one small pixel becomes a 10 x 10 block"
