"""Speed of `apps/infer` end to end: requests/s at batch 1, 4, 16 and where the time goes.

    uv run python apps/benchmarks/bench_infer.py [--model DIR] [--requests N] [--device cpu|cuda] [--quick]

Runs the runner itself (`himtok_apps.infer.run`: images read from disk, questions built, batched generation,
masks decoded at image size, binary + overlay PNGs and results.jsonl written) on the bundled demo images
(640x148 to 640x427), every answer starting with `<|mt_start|>` so that every request decodes and writes a mask.
Without `--model` it builds a random model of the demo model's size (`himtok_apps.stage2.model.tiny_lmm_config`:
2-layer ViT of width 96 on 112-px tiles, 4-layer Qwen2 of width 192; the stage-1 `tiny` mask tokenizer), or
lmm-adapter's smaller `tiny_himtok_model` when stage 2 is not there. Stage times come from the runner's own hooks
(`summary.json`); "work" shares sum the stages' seconds, the writing thread's included, and "wall write" is how
long the loop waited for that thread. Then fp32 against bf16 on the same device: the mask tokenizer alone
(encode and decode of a batch) and the whole runner at the largest batch size, with whether answers, codes and
masks agree. One torch thread by default (`--threads`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from himtok_apps.infer import DEMO_REQUESTS, DecodeOptions, InferConfig, requests_from_jsonl, run
from himtok_apps.infer.writers import mask_of
from himtok_lmm_adapter import (
    HiMTokModel,
    HiMTokSettings,
    TilingConfig,
    add_mask_vocabulary,
    build_tiny_tokenizer,
    tiny_himtok_model,
)
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig
from transformers import InternVLForConditionalGeneration

STAGE_ORDER = ("load", "preprocess", "vision", "generate", "decode", "write")


def build_model(directory: Path, seed: int = 0) -> str:
    """A random model of the demo model's size saved in `directory`; returns what it is."""
    try:
        from himtok_apps.stage2.model import TINY_IMAGE_SIZE, tiny_lmm_config
    except ImportError:
        model = tiny_himtok_model(seed=seed)
        model.save_pretrained(directory)
        params = sum(p.numel() for p in model.lmm.parameters()) / 1e6
        return f"lmm-adapter tiny_himtok_model (56-px tiles, up to 2): LMM {params:.1f} M parameters"
    tokenizer = build_tiny_tokenizer()
    image_token: Any = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lmm = InternVLForConditionalGeneration(tiny_lmm_config(len(tokenizer), int(image_token)))
        mask_tokenizer = MaskTokenizer(MaskTokenizerConfig.preset("tiny")).eval()
    lmm.generation_config.pad_token_id = tokenizer.pad_token_id
    end_of_turn: Any = tokenizer.convert_tokens_to_ids("<|im_end|>")
    lmm.generation_config.eos_token_id = int(end_of_turn)
    add_mask_vocabulary(lmm, tokenizer)
    settings = HiMTokSettings(tiling=TilingConfig(image_size=TINY_IMAGE_SIZE, max_tiles=1))
    HiMTokModel.from_parts(lmm, tokenizer, mask_tokenizer, settings).save_pretrained(directory)
    params = sum(p.numel() for p in lmm.parameters()) / 1e6
    return (
        f"demo-model size (stage-2 tiny_lmm_config, one {TINY_IMAGE_SIZE}-px tile): LMM {params:.1f} M "
        "parameters, mask tokenizer `tiny`"
    )


def one_run(
    model: Path, out: Path, requests: list, batch: int, device: str, dtype: str, overlays: bool = True
) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    options = DecodeOptions(answer_prefix="<|mt_start|>", max_new_tokens=40)
    config = InferConfig(
        requests,
        model,
        out,
        options,
        batch_size=batch,
        device=device,
        dtype=dtype,
        overlays=overlays,
        progress=False,
    )
    summary = run(config).as_dict()
    summary["records"] = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return summary


def stage_line(summary: dict) -> str:
    shares = summary["stage_shares"]
    wall_write = summary["write_wait_seconds"] / summary["seconds"]
    parts = " | ".join(f"{100 * shares[s]:5.1f}" for s in STAGE_ORDER)
    return f"{parts} | {100 * wall_write:5.1f}"


def tokenizer_ratio(model_dir: Path, device: str, batch: int = 16, repeats: int = 5) -> str:
    """Mask tokenizer encode / decode_soft at fp32 and bf16 (weights cast, as `--dtype bf16` does)."""
    timings = {}
    codes_by_dtype = {}
    masks = torch.zeros(batch, 256, 256)
    for i in range(batch):
        masks[i, 20 + 5 * i : 180, 30 : 200 - 4 * i] = 1
    for dtype in (torch.float32, torch.bfloat16):
        tokenizer = (
            MaskTokenizer.from_pretrained(model_dir / "mask_tokenizer").to(device=device, dtype=dtype).eval()
        )
        probs = torch.softmax(
            torch.randn(batch, 32, tokenizer.config.codebook_size, generator=torch.Generator().manual_seed(0))
            * 4,
            -1,
        )
        with torch.no_grad():
            tokenizer.encode(masks), tokenizer.decode_soft(probs)  # warm-up
            start = time.perf_counter()
            for _ in range(repeats):
                codes = tokenizer.encode(masks)
            encode = (time.perf_counter() - start) / repeats
            start = time.perf_counter()
            for _ in range(repeats):
                tokenizer.decode_soft(probs)
            decode = (time.perf_counter() - start) / repeats
        timings[dtype] = (encode, decode)
        codes_by_dtype[dtype] = codes.cpu()
    (e32, d32), (e16, d16) = timings[torch.float32], timings[torch.bfloat16]
    same = float((codes_by_dtype[torch.float32] == codes_by_dtype[torch.bfloat16]).float().mean())
    return (
        f"mask tokenizer, batch {batch}: encode {1e3 * e32:.1f} ms fp32 / {1e3 * e16:.1f} ms bf16 "
        f"({e32 / e16:.2f}x), decode_soft {1e3 * d32:.1f} / {1e3 * d16:.1f} ms ({d32 / d16:.2f}x); "
        f"codes equal {100 * same:.1f}%"
    )


def agreement(a: dict, b: dict) -> str:
    answers = sum(x["answer"] == y["answer"] for x, y in zip(a["records"], b["records"], strict=True))
    codes = sum(
        x["masks"][0]["codes"] == y["masks"][0]["codes"]
        for x, y in zip(a["records"], b["records"], strict=True)
    )
    ious = []
    for x, y in zip(a["records"], b["records"], strict=True):
        m, n = mask_of(x["masks"][0]["rle"]), mask_of(y["masks"][0]["rle"])
        union = (m | n).sum()
        ious.append(1.0 if union == 0 else (m & n).sum() / union)
    total = len(a["records"])
    return f"answers equal {answers}/{total}, codes equal {codes}/{total}, mask IoU fp32 vs bf16 mean {np.mean(ious):.4f} min {np.min(ious):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, help="a HiMTokModel directory (default: random, demo-model size)"
    )
    parser.add_argument("--requests", type=int, default=64, help="requests per run (default 64)")
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs per batch size, fastest kept (default 2)"
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="16 requests, batch 1 and 16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.requests, args.batch_sizes, args.repeats = 16, [1, 16], 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.model is None:
            model = root / "model"
            what = build_model(model)
        else:
            model, what = args.model, str(args.model)
        demo = requests_from_jsonl(DEMO_REQUESTS)
        requests = [
            type(demo[0])(**{**demo[i % len(demo)].__dict__, "id": f"r{i}", "index": i})
            for i in range(args.requests)
        ]
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"model: {what}; {args.requests} requests over the demo images; device {args.device}, "
            f"{args.threads} torch thread(s); load average before: {load} on {os.cpu_count()} CPUs"
        )
        one_run(model, root / "warm", requests[:2], 2, args.device, "fp32")  # first-call costs
        print(
            "\n| batch | requests/s | speed-up | work %: load | preprocess | vision | generate | decode | write | wall write % |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        results: dict[int, dict] = {}
        for _ in range(args.repeats):  # interleaved; the fastest run of each batch size is kept
            for batch in args.batch_sizes:
                summary = one_run(model, root / f"b{batch}", requests, batch, args.device, "fp32")
                if batch not in results or summary["seconds"] < results[batch]["seconds"]:
                    results[batch] = summary
        base = results[args.batch_sizes[0]]["requests_per_second"]
        for batch in args.batch_sizes:
            rate = results[batch]["requests_per_second"]
            print(f"| {batch} | {rate:.2f} | {rate / base:.2f}x | {stage_line(results[batch])} |")
        largest = args.batch_sizes[-1]
        bare = one_run(model, root / "bare", requests, largest, args.device, "fp32", overlays=False)
        rate = bare["requests_per_second"]
        print(
            f"| {largest}, --no-overlay | {rate:.2f} | "
            f"{rate / results[args.batch_sizes[0]]['requests_per_second']:.2f}x | {stage_line(bare)} |"
        )
        bf16 = one_run(model, root / "bf16", requests, largest, args.device, "bf16")
        fp32 = results[largest]
        print(
            f"\nbf16 runner, batch {largest}: {bf16['requests_per_second']:.2f} requests/s "
            f"({bf16['requests_per_second'] / fp32['requests_per_second']:.2f}x fp32); {agreement(fp32, bf16)}"
        )
        print(f"bf16 work %: {stage_line(bf16)}")
        print(tokenizer_ratio(model, args.device))


if __name__ == "__main__":
    main()
