"""Convert an official InternVL / HiMTok release into a transformers-native `HiMTokModel` directory.

The conversion is planned from the safetensors headers first: every source tensor must map to target tensors
of the right shapes, every tensor of the target `InternVLForConditionalGeneration` (and of the `MaskTokenizer`)
must be filled exactly once, and the tokenizer must hold a contiguous mask vocabulary. Only then are weights
read, one tensor at a time, and written as output shards of at most `shard_bytes`; peak memory is about one
output shard (each tensor is copied out of a mapping closed at once, so source pages do not stay resident).
Everything is written into a temporary folder beside the output and renamed at the end, so a failed
conversion leaves nothing behind. No code from the source directory is imported or executed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from himtok_mask_tokenizer import MaskTokenizer, MaskTokenizerConfig, infer_official_config, key_report
from himtok_prompt_templates import chat_template_jinja, get_chat_format
from safetensors.torch import save_file
from transformers import GenerationConfig, InternVLConfig, InternVLForConditionalGeneration

from himtok_lmm_adapter.images import TilingConfig
from himtok_lmm_adapter.official.config import (
    OfficialFormatError,
    OfficialSettings,
    internvl_config_from_official,
    official_settings,
    read_official_config,
)
from himtok_lmm_adapter.official.source import SourceCheckpoint, name_list, sha256_of
from himtok_lmm_adapter.official.tokenizer import build_fast_tokenizer
from himtok_lmm_adapter.official.weights import (
    HeadLayout,
    WeightMapper,
    cast,
    is_mask_decoder_key,
    is_recomputed_buffer,
    mask_tokenizer_key,
)
from himtok_lmm_adapter.settings import HiMTokSettings
from himtok_lmm_adapter.vocab import MaskVocab

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
DEFAULT_SHARD_BYTES = 2 << 30
REPORT_NAME = "conversion_report.json"
IMAGE_CONTEXT = "<IMG_CONTEXT>"
# The released InternVL2_5-HiMTok-8B (InternLM2.5 tokenizer of 92544 pieces + 9 InternVL tokens).
RELEASE_8B_IDS = {"mt_start": 92553, "mt_end": 92554, "mt_0": 92555, "vocab_size": 93579}
INTERNLM2_5_BASE_VOCAB = 92544

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass
class PlannedTensor:
    target: str
    source: str
    part: int
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        n = 1
        for size in self.shape:
            n *= size
        return n * torch.empty((), dtype=self.dtype).element_size()


@dataclass
class ConversionPlan:
    """Everything decided before any weight is read."""

    kind: str  # "himtok" (with mask decoder and mask vocabulary) or "internvl" (a plain InternVL)
    settings: OfficialSettings
    config: InternVLConfig
    vocab: MaskVocab | None
    image_token_id: int
    end_of_turn_id: int
    lmm_tensors: list[PlannedTensor]
    shards: list[list[PlannedTensor]]
    mask_keys: list[str]
    mask_config: MaskTokenizerConfig | None
    recomputed: list[str]
    out_dtype: torch.dtype
    notes: list[str] = field(default_factory=list)


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise OfficialFormatError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def _token_id(tokenizer: Any, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise OfficialFormatError(f"the tokenizer has no {token} token")
    return int(token_id)


def _mask_vocab(tokenizer: Any, codebook_size: int) -> MaskVocab | None:
    present = [t for t in ("<|mt_start|>", "<|mt_end|>", "<|mt_0|>") if t in tokenizer.get_vocab()]
    if not present:
        return None
    try:
        return MaskVocab.from_tokenizer(tokenizer, codebook_size)
    except ValueError as err:
        raise OfficialFormatError(f"the tokenizer's mask vocabulary is unusable: {err}") from err


def _expected_state(config: InternVLConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = InternVLForConditionalGeneration(config)
    state = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    if _text(config).tie_word_embeddings:
        state.pop("lm_head.weight", None)
    return state


def _release_check(vocab: MaskVocab, vocab_size: int, tokenizer_size: int, base_vocab: int) -> list[str]:
    """Compare with the ids the 8B release must show, when the source has the InternLM2.5 vocabulary."""
    if base_vocab != INTERNLM2_5_BASE_VOCAB:
        return []
    got = {
        "mt_start": vocab.start_id,
        "mt_end": vocab.end_id,
        "mt_0": vocab.first_mask_id,
        "vocab_size": vocab_size,
    }
    differ = {k: (got[k], v) for k, v in RELEASE_8B_IDS.items() if got[k] != v}
    if not differ:
        return [f"mask-token ids match the InternVL2_5-HiMTok-8B release: {RELEASE_8B_IDS}"]
    shown = ", ".join(f"{k} {g} (release {w})" for k, (g, w) in differ.items())
    return [
        f"WARNING: ids differ from the InternVL2_5-HiMTok-8B release: {shown}; tokenizer size {tokenizer_size}"
    ]


def plan_conversion(
    source: SourceCheckpoint,
    official: dict[str, Any],
    tokenizer: Any,
    *,
    dtype: torch.dtype | None,
    mask_heads: int | None,
    shard_bytes: int,
    codebook_size: int = 1024,
) -> ConversionPlan:
    """Check the whole conversion from headers and configs; raise `OfficialFormatError` naming any problem."""
    settings = official_settings(official)
    vocab = _mask_vocab(tokenizer, codebook_size)
    mask_keys = [k for k in source.tensors if is_mask_decoder_key(k)]
    if vocab is not None and not mask_keys:
        raise OfficialFormatError(
            "the tokenizer has the mask vocabulary but the weights hold no mask_decoder.* tensors"
        )
    if mask_keys and vocab is None:
        raise OfficialFormatError(
            "the weights hold mask_decoder.* tensors but the tokenizer has no <|mt_start|> token"
        )
    image_token_id = _token_id(tokenizer, IMAGE_CONTEXT)
    end_of_turn_id = _token_id(tokenizer, get_chat_format(settings.template).end_of_turn)

    has_head = any(
        k in source.tensors for k in ("language_model.output.weight", "language_model.lm_head.weight")
    )
    llm_ties = bool(official["llm_config"].get("tie_word_embeddings", False))
    config = internvl_config_from_official(
        official, image_token_id, tie_word_embeddings=llm_ties and not has_head
    )
    mapper = WeightMapper(settings.llm_architecture, _heads(config))
    expected = _expected_state(config)

    float_dtypes = [t.dtype for t in source.tensors.values() if t.dtype.is_floating_point]
    out_dtype = dtype or (max(set(float_dtypes), key=float_dtypes.count) if float_dtypes else torch.float32)
    planned: dict[str, PlannedTensor] = {}
    unmapped: list[str] = []
    recomputed: list[str] = []
    duplicated: list[str] = []
    for info in source.tensors.values():
        if is_mask_decoder_key(info.name):
            continue
        if is_recomputed_buffer(info.name):
            recomputed.append(info.name)
            continue
        shapes = mapper.target_shapes(info.name, info.shape)
        if shapes is None:
            unmapped.append(info.name)
            continue
        for part, (target, shape) in enumerate(shapes.items()):
            if target in planned:
                duplicated.append(target)
            tensor_dtype = out_dtype if info.dtype.is_floating_point else info.dtype
            planned[target] = PlannedTensor(target, info.name, part, shape, tensor_dtype)
    problems = []
    if unmapped:
        problems.append(f"source tensors with no place in the target model {name_list(unmapped)}")
    if duplicated:
        problems.append(f"target tensors filled twice {name_list(duplicated)}")
    missing = [k for k in expected if k not in planned]
    unexpected = [k for k in planned if k not in expected]
    if missing:
        problems.append(f"target tensors not filled {name_list(missing)}")
    if unexpected:
        problems.append(f"mapped tensors the target model does not have {name_list(unexpected)}")
    wrong = [
        f"{p.source} -> {p.target} {p.shape} vs {expected[p.target]}"
        for p in planned.values()
        if p.target in expected and tuple(p.shape) != tuple(expected[p.target])
    ]
    if wrong:
        problems.append(f"shape mismatches {name_list(wrong, 4)}")
    if problems:
        raise OfficialFormatError("; ".join(problems))

    rows = expected["model.language_model.embed_tokens.weight"][0]
    if len(tokenizer) > rows:
        raise OfficialFormatError(
            f"the tokenizer has {len(tokenizer)} tokens but the embeddings only {rows} rows"
        )

    mask_config = None
    if mask_keys:
        mask_shapes = {mask_tokenizer_key(k): source.tensors[k].shape for k in mask_keys}
        try:
            mask_config = infer_official_config(mask_shapes, heads=mask_heads)
        except ValueError as err:
            raise OfficialFormatError(f"mask_decoder.*: {err}") from err
        with torch.device("meta"):
            reference = MaskTokenizer(mask_config).state_dict()
        shaped = {
            k: torch.empty(s, device="meta", dtype=reference[k].dtype if k in reference else torch.float32)
            for k, s in mask_shapes.items()
        }
        issues = key_report(reference, shaped)
        if issues:
            raise OfficialFormatError(
                "mask_decoder.* does not match an official HiMT tokenizer: " + "; ".join(issues)
            )
        if mask_config.codebook_size != codebook_size:
            raise OfficialFormatError(
                f"the mask tokenizer has {mask_config.codebook_size} codes but the vocabulary {codebook_size}"
            )

    order = [planned[t] for key in source.tensors for t in planned if planned[t].source == key]
    shards = _assign_shards(order, shard_bytes)
    notes = []
    if vocab is not None:
        notes += _release_check(vocab, rows, len(tokenizer), _base_vocab(tokenizer, vocab))
    return ConversionPlan(
        kind="himtok" if vocab is not None else "internvl",
        settings=settings,
        config=config,
        vocab=vocab,
        image_token_id=image_token_id,
        end_of_turn_id=end_of_turn_id,
        lmm_tensors=order,
        shards=shards,
        mask_keys=mask_keys,
        mask_config=mask_config,
        recomputed=recomputed,
        out_dtype=out_dtype,
        notes=notes,
    )


def _base_vocab(tokenizer: Any, vocab: MaskVocab) -> int:
    """Size of the vocabulary before InternVL's 9 tokens and the mask tokens were added."""
    return min(vocab.start_id, vocab.end_id, vocab.first_mask_id) - 9


def _assign_shards(tensors: list[PlannedTensor], shard_bytes: int) -> list[list[PlannedTensor]]:
    shards: list[list[PlannedTensor]] = [[]]
    size = 0
    for tensor in tensors:
        if shards[-1] and size + tensor.nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(tensor)
        size += tensor.nbytes
    return shards


def _shard_name(index: int, count: int) -> str:
    return "model.safetensors" if count == 1 else f"model-{index + 1:05d}-of-{count:05d}.safetensors"


def write_lmm_weights(
    plan: ConversionPlan, source: SourceCheckpoint, out: Path, progress: Progress | None = None
) -> dict[str, Any]:
    """Stream the language/vision weights shard by shard into `out`; returns counts for the report."""
    mapper_rules = WeightMapper(plan.settings.llm_architecture, _heads(plan.config))
    shard_of = {t.target: i for i, shard in enumerate(plan.shards) for t in shard}
    remaining = [len(shard) for shard in plan.shards]
    buffers: list[dict[str, torch.Tensor]] = [{} for _ in plan.shards]
    weight_map: dict[str, str] = {}
    total = sum(t.nbytes for t in plan.lmm_tensors)
    done = 0
    read = 0
    by_source: dict[str, list[PlannedTensor]] = {}
    for tensor in plan.lmm_tensors:
        by_source.setdefault(tensor.source, []).append(tensor)
    for keys in source.keys_by_file().values():
        for key in (k for k in keys if k in by_source):
            converted = mapper_rules.convert(key, source.read(key))
            read += 1
            for planned in by_source[key]:
                index = shard_of[planned.target]
                buffers[index][planned.target] = cast(converted[planned.target], plan.out_dtype).contiguous()
                remaining[index] -= 1
                done += planned.nbytes
                if remaining[index] == 0:
                    name = _shard_name(index, len(plan.shards))
                    save_file(buffers[index], str(out / name), metadata={"format": "pt"})
                    weight_map.update(dict.fromkeys(buffers[index], name))
                    buffers[index] = {}
            del converted
            if progress is not None:
                progress(done, total)
    if len(plan.shards) > 1:
        index_json = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out / "model.safetensors.index.json").write_text(json.dumps(index_json, indent=2) + "\n")
    return {"tensors_read": read, "tensors_written": len(weight_map), "bytes_written": total}


def _text(config: InternVLConfig) -> Any:
    """The language-model config (typed loosely: transformers types it as a union with dict)."""
    return config.text_config


def _heads(config: InternVLConfig) -> HeadLayout:
    text = _text(config)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return HeadLayout(text.num_attention_heads, text.num_key_value_heads, head_dim)


def write_mask_tokenizer(plan: ConversionPlan, source: SourceCheckpoint, directory: Path) -> int:
    """`mask_decoder.*` -> `directory` in `MaskTokenizer.save_pretrained`'s format (config.json + safetensors)."""
    assert plan.mask_config is not None
    directory.mkdir(parents=True)
    state: dict[str, torch.Tensor] = {}
    for keys in source.keys_by_file().values():
        for key in (k for k in keys if is_mask_decoder_key(k)):
            state[mask_tokenizer_key(key)] = cast(source.read(key), plan.out_dtype).contiguous()
    plan.mask_config.to_json(directory / "config.json")
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return len(state)


def _prepare_output(out: Path, overwrite: bool) -> Path:
    if out.exists() and not overwrite:
        raise OfficialFormatError(f"the output folder {out} exists (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def _publish(tmp: Path, out: Path) -> None:
    """Rename `tmp` to `out`, replacing an existing `out` only once the new folder is complete."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)


def _source_files(paths: list[Path], hashes: bool) -> list[dict[str, Any]]:
    entries = []
    for path in paths:
        entry: dict[str, Any] = {"name": path.name, "bytes": path.stat().st_size}
        if hashes:
            entry["sha256"] = sha256_of(path)
        entries.append(entry)
    return entries


def convert_official(
    src: str | Path,
    out: str | Path,
    *,
    dtype: str | torch.dtype | None = None,
    overwrite: bool = False,
    mask_heads: int | None = None,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    hashes: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Convert an official release directory (or a bare `himtok.pth`) into `out`; returns the report.

    A release directory becomes a `HiMTokModel` directory (a plain InternVL without mask decoder becomes a
    transformers InternVL directory for `--lmm`). A `.pth` file becomes a `MaskTokenizer` directory.
    `mask_heads` sets the mask tokenizer's attention heads (not recorded in official checkpoints; default
    width // 64, the official size table). Raises `OfficialFormatError` (a `ValueError`) on bad input.
    """
    started = time.perf_counter()
    src, out = Path(src), Path(out)
    torch_dtype = parse_dtype(dtype)
    if src.is_file():
        return convert_himtok_checkpoint(
            src, out, dtype=torch_dtype, overwrite=overwrite, mask_heads=mask_heads
        )
    if not src.is_dir():
        raise OfficialFormatError(f"source {src} does not exist")
    official = read_official_config(src)
    settings = official_settings(official)
    get_chat_format(settings.template)
    tokenizer = build_fast_tokenizer(src, chat_template=chat_template_jinja(settings.template))
    source = SourceCheckpoint(src)
    plan = plan_conversion(
        source, official, tokenizer, dtype=torch_dtype, mask_heads=mask_heads, shard_bytes=shard_bytes
    )

    tmp = _prepare_output(out, overwrite)
    try:
        counts = write_lmm_weights(plan, source, tmp, progress)
        plan.config.dtype = plan.out_dtype
        plan.config.save_pretrained(tmp)
        GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=plan.end_of_turn_id,
            pad_token_id=tokenizer.pad_token_id,
        ).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        mask_written = 0
        if plan.kind == "himtok":
            assert plan.vocab is not None and plan.mask_config is not None
            mask_written = write_mask_tokenizer(plan, source, tmp / "mask_tokenizer")
            HiMTokSettings(
                chat_format=settings.template,
                tiling=TilingConfig(
                    image_size=settings.image_size,
                    min_tiles=settings.min_dynamic_patch,
                    max_tiles=settings.max_dynamic_patch,
                    use_thumbnail=settings.use_thumbnail,
                    dynamic=settings.dynamic_image_size,
                ),
                codebook_size=plan.vocab.codebook_size,
            ).save(tmp)
        report = _report(plan, source, src, counts, mask_written, hashes, started)
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _report(
    plan: ConversionPlan,
    source: SourceCheckpoint,
    src: Path,
    counts: dict[str, Any],
    mask_written: int,
    hashes: bool,
    started: float,
) -> dict[str, Any]:
    tokenizer_files = [
        src / n for n in ("tokenizer.model", "tokenizer_config.json", "added_tokens.json", "config.json")
    ]
    files = [source.directory / n for n in source.files] + [p for p in tokenizer_files if p.is_file()]
    report: dict[str, Any] = {
        "kind": plan.kind,
        "source": str(src.resolve()),
        "source_files": _source_files(files, hashes),
        "llm_architecture": plan.settings.llm_architecture,
        "dtype": str(plan.out_dtype).removeprefix("torch."),
        "tensors_read": counts["tensors_read"] + len(plan.mask_keys) + len(plan.recomputed),
        "tensors_written": counts["tensors_written"] + mask_written,
        "lmm_tensors_written": counts["tensors_written"],
        "mask_tokenizer_tensors_written": mask_written,
        "recomputed_buffers_not_written": plan.recomputed,
        "output_shards": len(plan.shards),
        "bytes_written": counts["bytes_written"],
        "image_token_id": plan.image_token_id,
        "end_of_turn_id": plan.end_of_turn_id,
        "vocab_size": _text(plan.config).vocab_size,
        "notes": plan.notes,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if plan.vocab is not None:
        report["mask_token_ids"] = {
            "mt_start": plan.vocab.start_id,
            "mt_end": plan.vocab.end_id,
            "mt_0": plan.vocab.first_mask_id,
            "codebook_size": plan.vocab.codebook_size,
        }
    if plan.mask_config is not None:
        report["mask_tokenizer_config"] = plan.mask_config.to_dict()
    return report


def convert_himtok_checkpoint(
    src: Path,
    out: Path,
    *,
    dtype: torch.dtype | None = None,
    overwrite: bool = False,
    mask_heads: int | None = None,
) -> dict[str, Any]:
    """A bare official tokenizer (`himtok.pth`) -> a `MaskTokenizer` directory."""
    from himtok_mask_tokenizer import read_official_state_dict

    started = time.perf_counter()
    try:
        state = read_official_state_dict(src)
        config = infer_official_config({k: tuple(v.shape) for k, v in state.items()}, heads=mask_heads)
        tokenizer = MaskTokenizer.from_official(state, config, dtype=dtype)
    except ValueError as err:
        raise OfficialFormatError(f"{src}: {err}".replace("\n", " ")) from err
    tmp = _prepare_output(out, overwrite)
    try:
        tokenizer.save_pretrained(tmp)
        report = {
            "kind": "mask_tokenizer",
            "source": str(src.resolve()),
            "source_files": _source_files([src], True),
            "dtype": str(tokenizer.dtype).removeprefix("torch."),
            "tensors_read": len(state),
            "tensors_written": len(tokenizer.state_dict()),
            "mask_tokenizer_config": config.to_dict(),
            "seconds": round(time.perf_counter() - started, 3),
        }
        (tmp / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
