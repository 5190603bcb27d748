"""lmm-adapter hot paths against simple baselines, each measured in the same run.

    uv run python packages/lmm-adapter/benchmarks/bench_adapter.py [--quick]

1. `MaskTokenLogitsProcessor` on a batch at the InternVL2.5-8B vocabulary size (93579 columns) against a
   per-row Python loop that tracks each row's span state (the obvious hand-written processor).
2. Constrained generation on the tiny InternVL against unconstrained generation of the same length
   (the processor's overhead inside `generate`).
3. The soft mask loss (full level + 3 levels, shared by the batch) against decoding each mask and level
   separately (what a per-sample loop like the official one costs).
CPU, one thread, fixed seeds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from himtok_hml_loss import HierarchicalMaskLoss
from himtok_lmm_adapter import (
    MaskTokenLogitsProcessor,
    MaskVocab,
    add_mask_vocabulary,
    soft_mask_loss,
    tiny_internvl,
)
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig
from transformers import LogitsProcessorList

INTERNVL_VOCAB = MaskVocab(start_id=92553, end_id=92554, first_mask_id=92555)
INTERNVL_COLUMNS = 93579


def best_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def loop_processor(vocab: MaskVocab, length: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Baseline: per row, find the last start in Python and mask that row's scores."""

    def process(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        for row, ids in enumerate(input_ids.tolist()):
            last = max((i for i, t in enumerate(ids) if t == vocab.start_id), default=-1)
            written = len(ids) - 1 - last
            if last >= 0 and written < length:
                keep = scores[row, vocab.mask_slice].clone()
                scores[row] = float("-inf")
                scores[row, vocab.mask_slice] = keep
            elif last >= 0 and written == length:
                keep_end = scores[row, vocab.end_id].clone()
                scores[row] = float("-inf")
                scores[row, vocab.end_id] = keep_end
            else:
                scores[row, vocab.mask_slice] = float("-inf")
                scores[row, vocab.end_id] = float("-inf")
        return scores

    return process


def bench_processor(repeats: int) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    batch, seq = 8, 512
    input_ids = torch.randint(0, 90000, (batch, seq), generator=gen)
    for row in range(batch):  # rows in every state: inside a span, at its end, outside
        input_ids[row, seq - 1 - 4 * row] = INTERNVL_VOCAB.start_id
    scores = torch.randn(batch, INTERNVL_COLUMNS, generator=gen)
    ours = MaskTokenLogitsProcessor(INTERNVL_VOCAB, 32)
    baseline = loop_processor(INTERNVL_VOCAB, 32)
    assert torch.equal(ours(input_ids, scores), baseline(input_ids, scores))
    return best_time(lambda: ours(input_ids, scores), repeats), best_time(
        lambda: baseline(input_ids, scores), repeats
    )


def bench_generation(repeats: int) -> tuple[float, float]:
    model, tokenizer = tiny_internvl()
    vocab = add_mask_vocabulary(model, tokenizer)
    batch = tokenizer(["Segment the dog. <|mt_start|>"] * 4, return_tensors="pt", padding=True)
    steps = 34
    constrained = LogitsProcessorList([MaskTokenLogitsProcessor(vocab, 32)])

    def run(processors: LogitsProcessorList) -> None:
        model.generate(
            **batch, max_new_tokens=steps, min_new_tokens=steps, do_sample=False, logits_processor=processors
        )

    return best_time(lambda: run(constrained), repeats), best_time(
        lambda: run(LogitsProcessorList()), repeats
    )


def bench_soft_loss(repeats: int) -> tuple[float, float]:
    torch.manual_seed(0)
    tokenizer_model = MaskTokenizer(MaskTokenizerConfig.preset("tiny")).eval()
    vocab = MaskVocab(start_id=0, end_id=1, first_mask_id=2)
    masks_n, seq = 8, 40
    labels = torch.full((masks_n, seq), 5000)
    labels[:, 2] = vocab.start_id
    labels[:, 3:35] = torch.randint(2, 1026, (masks_n, 32))
    logits = torch.randn(masks_n, seq, 1100)
    masks = (torch.rand(masks_n, 64, 64) > 0.5).float()
    hml = HierarchicalMaskLoss.official_lmm()
    levels = torch.tensor([1, 6, 17])

    def ours() -> None:
        with torch.no_grad():
            soft_mask_loss(logits, labels, vocab, masks, tokenizer_model, hml, levels=levels)

    def per_mask() -> None:
        probs = torch.softmax(2 * logits[:, 2:34, vocab.mask_slice], -1)
        with torch.no_grad():
            for m in range(masks_n):
                for level in (32, *levels.tolist()):
                    tokenizer_model.decode_soft(probs[m : m + 1, :level])

    return best_time(ours, repeats), best_time(per_mask, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    repeats = 2 if args.quick else 5
    rows = [
        ("logits processor, B=8, V=93579", "per-row Python loop", *bench_processor(repeats * 3)),
        ("tiny InternVL generate, B=4, 34 tokens", "unconstrained generate", *bench_generation(repeats)),
        ("soft mask loss, 8 masks x 4 levels (fwd)", "decode per mask and level", *bench_soft_loss(repeats)),
    ]
    print(f"{'operation':<42} {'ours ms':>9}  {'baseline':<26} {'base ms':>9} {'base/ours':>9}")
    for name, base_name, ours, base in rows:
        print(f"{name:<42} {ours * 1e3:9.2f}  {base_name:<26} {base * 1e3:9.2f} {base / ours:9.2f}x")


if __name__ == "__main__":
    main()
