"""``--model``: run a ``HiMTokModel`` over the samples, batched, resumable and sharded under torchrun.

Each finished sample is one line of ``predictions.jsonl`` (``sample_id``, ``prompt``, ``mask`` as COCO RLE or
null, ``answer``, ``error``), appended and flushed as it is made (per rank, ``predictions.jsonl.rank<R>``). A
rerun skips the samples already there with the same prompt; under ``torchrun`` rank r takes every W-th pending
sample, and rank 0 merges the shards into ``predictions.jsonl`` in input order once all ranks are done. The
file has the format ``--predictions`` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from himtok_apps.eval import masks as M
from himtok_apps.eval.samples import Sample
from himtok_apps.jsonl_shards import all_records, append_record, merge_shards, shard_path
from himtok_apps.training import distributed as D

UNASKABLE = "the query cannot be asked (empty, or it holds reserved markup)"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True)
class GenerationOptions:
    batch_size: int = 8
    num_tokens: int = 32  # decode each mask from its first N tokens (coarse to fine)
    max_new_tokens: int = 128
    answer_prefix: str = ""  # e.g. "<|mt_start|>" makes the answer start with a mask


def load_model(directory: Path, device: torch.device, dtype: str | None) -> Any:
    from himtok_lmm_adapter import HiMTokModel

    model = HiMTokModel.from_pretrained(directory, dtype=DTYPES[dtype] if dtype else None, device=device)
    return model.eval()


def read_image(sample: Sample) -> Image.Image:
    with Image.open(sample.ref.image_path) as image:
        image.load()
        upright = ImageOps.exif_transpose(image) if sample.ref.exif_transpose else image
        return upright.convert("RGB")


def _mask_record(mask: torch.Tensor | None, sample: Sample) -> tuple[dict[str, Any] | None, list[int] | None]:
    """The mask as JSON RLE at the annotation's size (nearest-resized when the image file differs)."""
    if mask is None:
        return None, None
    array = mask.cpu().numpy().astype(np.uint8)
    resized_from = None
    if array.shape != (sample.height, sample.width):
        resized_from = list(array.shape)
        image = Image.fromarray(array * 255).resize((sample.width, sample.height), Image.Resampling.NEAREST)
        array = np.asarray(image, dtype=np.uint8)
    return M.to_json(M.encode(array)), resized_from


def pending_samples(
    samples: Sequence[Sample], questions: Sequence[str], done: dict[str, dict[str, Any]]
) -> list[int]:
    """Indices of the samples without a finished line for the same prompt."""
    return [
        i
        for i, (s, q) in enumerate(zip(samples, questions, strict=True))
        if done.get(s.sample_id, {}).get("prompt") != q
    ]


def predict(
    model: Any,
    samples: Sequence[Sample],
    questions: Sequence[str | None],
    path: Path,
    options: GenerationOptions,
    info: D.DistInfo,
    reuse: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]] | None:
    """Fill ``path`` with one line per sample; returns every record by sample id on rank 0 (None elsewhere).

    ``questions[i]`` is None when sample i cannot be asked (its error is recorded). ``reuse`` holds finished
    lines of another run (the other protocol) whose prompt may match: those are copied, not recomputed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    asked = [q if q is not None else "" for q in questions]
    done = all_records(path, "sample_id")
    todo = pending_samples(samples, asked, done)
    mine = todo[info.rank :: info.world_size]
    D.barrier(info)  # every rank has read the same finished lines before any rank appends new ones
    with shard_path(path, info.rank).open("a", encoding="utf-8") as handle:
        fresh = []
        for i in mine:
            old = (reuse or {}).get(samples[i].sample_id)
            if old is not None and old.get("prompt") == asked[i]:
                append_record(handle, old)
            elif questions[i] is None:
                append_record(handle, _failed(samples[i], asked[i], UNASKABLE))
            else:
                fresh.append(i)
        bar = tqdm(
            total=len(fresh),
            desc=f"{path.parent.name}",
            unit="sample",
            disable=not (progress and info.is_main),
        )
        for start in range(0, len(fresh), options.batch_size):
            batch = fresh[start : start + options.batch_size]
            images, runnable = [], []
            for i in batch:
                try:
                    images.append(read_image(samples[i]))
                    runnable.append(i)
                except (OSError, UnidentifiedImageError) as error:
                    append_record(handle, _failed(samples[i], asked[i], f"unreadable image: {error}"))
            if runnable:
                results = model.segment(
                    images,
                    [asked[i] for i in runnable],
                    num_mask_tokens=options.num_tokens,
                    max_new_tokens=options.max_new_tokens,
                    answer_prefix=options.answer_prefix,
                )
                for i, result in zip(runnable, results, strict=True):
                    mask, resized_from = _mask_record(result.mask, samples[i])
                    record: dict[str, Any] = {
                        "sample_id": samples[i].sample_id,
                        "prompt": asked[i],
                        "mask": mask,
                        "answer": result.answer,
                        "error": result.error,
                        "num_tokens": options.num_tokens,
                    }
                    if resized_from is not None:
                        record["resized_from"] = resized_from
                    append_record(handle, record)
            bar.update(len(batch))
        bar.close()
    D.barrier(info)
    merged = None
    if info.is_main:
        records = merge_shards(path, [s.sample_id for s in samples], "sample_id")
        merged = {str(r["sample_id"]): r for r in records}
    D.barrier(info)
    return merged


def _failed(sample: Sample, prompt: str, error: str) -> dict[str, Any]:
    return {"sample_id": sample.sample_id, "prompt": prompt, "mask": None, "answer": "", "error": error}
