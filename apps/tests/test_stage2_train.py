"""End-to-end stage-2/3 runs on the tiny model: outputs, exact resume after SIGKILL, DDP, DeepSpeed ZeRO-2/3,
the three ways to give a model, LoRA export, bad flags and bad data."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from himtok_apps.stage2.cli import config_from_args, main
from himtok_apps.stage2.config import SHIPPED_TOKENIZER
from himtok_apps.training.checkpoint import latest_checkpoint, load_checkpoint
from himtok_lmm_adapter import HiMTokModel, tiny_internvl
from himtok_mask_tokenizer import MaskTokenizer

REPO = Path(__file__).resolve().parents[2]
needs_tokenizer = pytest.mark.skipif(
    not (SHIPPED_TOKENIZER / "config.json").is_file(), reason=f"no shipped tokenizer at {SHIPPED_TOKENIZER}"
)
needs_deepspeed = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="DeepSpeed not installed"
)
pytestmark = [needs_tokenizer, pytest.mark.slow]


def small_args(out: Path, *extra: str) -> list[str]:
    return [
        "--batch-size", "2",
        "--max-minutes", "0",
        "--max-steps", "4",
        "--warmup-steps", "1",
        "--log-every", "2",
        "--eval-every", "1000",
        "--ckpt-every", "2",
        "--val-size", "2",
        "--eval-max-new-tokens", "40",
        "--threads", "1",
        "--out", str(out),
        *extra,
    ]  # fmt: skip


def run_cli(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def run_to_end(args: list[str], timeout: float = 900) -> str:
    process = run_cli(args)
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def final_state(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))["model"]  # type: ignore[arg-type]


def test_run_writes_a_loadable_model_metrics_and_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(2, small_args(run)) == 0
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]
    assert all(line["ce"] > 0 and "mask_loss" in line and "mask_full" in line for line in lines)
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["validation"]["samples"] == 2
    assert summary["tokenizer_ceiling"]["miou"] is not None
    assert (run / "report" / "iou_vs_tokens.png").is_file() or summary["validation"]["present"] == 0
    model = HiMTokModel.from_pretrained(run / "checkpoint")  # strict load of the export
    assert model.settings.tiling.max_tiles == 1
    assert (latest_checkpoint(run / "checkpoints") / "model" / "himtok.json").is_file()
    # The stage-2 decoder trains, the encoder and codebook do not.
    start = MaskTokenizer.from_pretrained(SHIPPED_TOKENIZER).state_dict()
    end = model.mask_tokenizer.state_dict()
    assert torch.equal(start["quantize.embedding.weight"], end["quantize.embedding.weight"])
    assert any(not torch.equal(start[k], end[k]) for k in start if k.startswith("decoder."))


def test_sigkill_then_resume_ends_bitwise_equal(tmp_path: Path) -> None:
    args = ("--max-steps", "8")
    run_to_end(["apps/train_stage2", *small_args(tmp_path / "straight", *args)])
    victim = run_cli(["apps/train_stage2", *small_args(tmp_path / "killed", *args)])
    deadline = time.time() + 600
    while latest_checkpoint(tmp_path / "killed" / "checkpoints") is None and time.time() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    run_to_end(["apps/train_stage2", "--resume", str(tmp_path / "killed")])
    a, b = final_state(tmp_path / "straight"), final_state(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stage3_from_a_stage2_model_freezes_the_decoder_and_uses_more_tiles(tmp_path: Path) -> None:
    first = tmp_path / "s2"
    assert main(2, small_args(first, "--max-steps", "2")) == 0
    second = tmp_path / "s3"
    assert main(3, small_args(second, "--model", str(first / "checkpoint"), "--max-steps", "2")) == 0
    config = json.loads((second / "run_config.json").read_text())
    assert config["max_tiles"] == 4 and config["mask_loss_weight"] == 0 and "decoder" not in config["train"]
    before = HiMTokModel.from_pretrained(first / "checkpoint").mask_tokenizer.state_dict()
    after = HiMTokModel.from_pretrained(second / "checkpoint")
    assert all(torch.equal(before[k], v) for k, v in after.mask_tokenizer.state_dict().items())
    assert after.settings.tiling.max_tiles == 4
    lines = [json.loads(line) for line in (second / "metrics.jsonl").read_text().splitlines()]
    assert "mask_loss" not in lines[-1]


def test_lmm_plus_tokenizer_gets_the_mask_vocabulary(tmp_path: Path) -> None:
    lmm, tokenizer = tiny_internvl()
    lmm.save_pretrained(tmp_path / "lmm")
    tokenizer.save_pretrained(tmp_path / "lmm")
    run = tmp_path / "run"
    args = small_args(run, "--lmm", str(tmp_path / "lmm"), "--mask-tokenizer", str(SHIPPED_TOKENIZER))
    assert main(2, [*args, "--max-steps", "2", "--loss", "official"]) == 0
    model = HiMTokModel.from_pretrained(run / "checkpoint")
    assert model.vocab.codebook_size == 1024 and len(model.tokenizer) > len(tokenizer)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "level_loss" in lines[-1] and "mask_loss" in lines[-1]


@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")
def test_lora_trains_adapters_and_exports_merged_weights(tmp_path: Path) -> None:
    run = tmp_path / "lora"
    assert main(2, small_args(run, "--lora", "4", "--max-steps", "2")) == 0
    model = HiMTokModel.from_pretrained(run / "checkpoint")  # strict: no lora_* keys left
    assert not any("lora" in k for k in model.lmm.state_dict())


def test_ddp_two_processes_end_with_identical_weights(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    launcher = ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29541"]
    run_to_end([*launcher, "apps/train_stage2", *small_args(run)])
    digests = [json.loads((run / "ranks" / f"rank-{r}.json").read_text())["sha256"] for r in range(2)]
    assert digests[0] == digests[1]
    assert json.loads((run / "report" / "summary.json").read_text())["world_size"] == 2


@needs_deepspeed
@pytest.mark.parametrize(("config", "port"), [("zero2.json", 29543), ("zero3.json", 29545)])
def test_deepspeed_two_processes_train_and_resume(tmp_path: Path, config: str, port: int) -> None:
    run = tmp_path / config.removesuffix(".json")
    launcher = ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port)]
    ds = ["--deepspeed", str(REPO / "apps" / "configs" / config)]
    run_to_end([*launcher, "apps/train_stage2", *small_args(run, *ds, "--halt-after", "2")])
    assert not (run / "report").exists()
    run_to_end([*launcher, "apps/train_stage2", "--resume", str(run)])
    digests = [json.loads((run / "ranks" / f"rank-{r}.json").read_text())["sha256"] for r in range(2)]
    assert digests[0] == digests[1]
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["steps"] == 4
    HiMTokModel.from_pretrained(run / "checkpoint")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss", "nope"], "invalid choice"),
        (["--data", "nowhere:x"], "nowhere"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--model", "/no/such/dir"], "does not exist"),
        (["--lmm", "/tmp"], "--lmm and --mask-tokenizer go together"),
        (["--train", "vision", "wings"], "invalid choice"),
    ],
)
def test_bad_flags_fail_with_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) if "invalid choice" in message else _no_exit():
        code = main(2, [*args, "--out", str(tmp_path / "x")])
        assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


class _no_exit:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_stage3_without_a_model_says_what_to_pass(tmp_path: Path) -> None:
    from himtok_apps.stage2.config import DEMO_MODEL

    if DEMO_MODEL.is_dir():
        pytest.skip("the demo model is shipped")
    with pytest.raises(ValueError, match="pass --model DIR"):
        config_from_args(3, ["--out", str(tmp_path / "x")])


def test_bad_records_and_too_long_answers_are_skipped_and_counted(tmp_path: Path) -> None:
    import numpy as np
    from himtok_apps.conversations import PLACEHOLDER
    from PIL import Image

    root = tmp_path / "data"
    root.mkdir()
    Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(root / "img.png")
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:40] = 255
    Image.fromarray(mask).save(root / "mask.png")
    Image.fromarray(mask[:20]).save(root / "small.png")
    answer = f"The mask appears at {PLACEHOLDER}."

    def line(
        image: str, mask_path: str | None, gpt: str, question: str = "<image>\nSegment <ref>it</ref>."
    ) -> str:
        record: dict[str, object] = {
            "image": image,
            "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": gpt}],
        }
        if mask_path is not None:
            record["mask"] = mask_path
        return json.dumps(record)

    lines = [
        line("img.png", "mask.png", answer),
        line("missing.png", "mask.png", answer),  # missing image
        line("img.png", "small.png", answer),  # mask size differs from the image
        line("img.png", "mask.png", "No placeholder here."),  # a mask but no placeholder
        line("img.png", "mask.png", answer, "<image>\n" + "Segment it. " * 200),  # above --max-length
    ]
    (root / "ann.jsonl").write_text("\n".join(lines) + "\n")
    meta = root / "meta.json"
    meta.write_text(
        json.dumps({"toy": {"root": str(root), "annotation": str(root / "ann.jsonl"), "repeat_time": 1}})
    )
    run = tmp_path / "run"
    output = run_to_end(
        ["apps/train_stage2", *small_args(run, "--data", f"official:{meta}", "--val-data", "shapes:")]
    )
    assert "skipped" in output
    skipped = json.loads((run / "report" / "summary.json").read_text())["skipped"]
    assert skipped["total"] == 4, skipped
