"""Official-checkpoint conversion: peak memory and time of the streaming converter against baselines.

    uv run python packages/lmm-adapter/benchmarks/bench_convert.py [--quick] [--size-gb 2.0]
        [--source-shard-mb 400] [--shard-size 256MB 1GB] [--workdir DIR]

Builds, in a temporary folder, a synthetic official InternVL/HiMTok release of about `--size-gb` GiB: the
golden tiny checkpoint's tokenizer files, vision tower and mask decoder, around a bigger random bf16 InternLM2
(hidden 2048, MLP 8192, 16 heads, 8 kv heads, as many layers as the size needs), written shard by shard as
`model-XXXXX-of-YYYYY.safetensors` + `model.safetensors.index.json`. Then, each in a fresh process:

1. import only: torch, transformers and himtok_lmm_adapter imported (the fixed cost every run pays);
2. naive load-all: every source tensor loaded into one dict (`load_file` per shard, all kept), what a
   non-streaming converter holds at its peak;
3. streaming: `convert_official(..., mask_heads=4, hashes=False, shard_bytes=S)` for each `--shard-size` S.

Peak RSS comes from `wait4` on each measured process, started by a small stdlib-only launcher: a process
started straight from this one (which holds a source shard while building) would inherit this process's
high-water mark at `exec`. The launcher also samples `/proc/PID/status` to split the peak into anonymous
memory (tensors) and file-backed pages (memory-mapped safetensors). Each output is checked against the
target model's state dict. Single runs, warm page cache (the source was just written).

Reading the numbers: safetensors (0.8) maps each source file once and `get_tensor` returns views into that
mapping, so a buffered tensor costs nothing until `save_file` reads it, and then its pages stay resident
(file-backed, clean, reclaimable) as long as any tensor of the same source file is alive. Only the split
`wqkv`/`qkv` parts are private copies (anon). Expect the streaming peak above the import baseline to be
about one output shard plus the pages of the source shard(s) that shard straddles, not the model size.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

# ../shared beside the checkout, or $HIMTOK_SHARED (as the tests find it)
SHARED = Path(os.environ.get("HIMTOK_SHARED") or Path(__file__).resolve().parents[3].parent / "shared")
GOLDEN = SHARED / "reference" / "golden" / "official-tiny-lmm" / "official-checkpoint"
COPIED_FILES = (
    "tokenizer.model",
    "tokenizer_config.json",
    "added_tokens.json",
    "special_tokens_map.json",
    "generation_config.json",
)
MIB = 1 << 20
GIB = 1 << 30
HIDDEN, INTERMEDIATE, HEADS, KV_HEADS = 2048, 8192, 16, 8
HEAD_DIM = HIDDEN // HEADS
DTYPE = torch.bfloat16

# Runs the command given as arguments, waits for it with wait4 (so the peak is that process's own) and
# samples its RssAnon / RssFile; prints one JSON line. Imports nothing big, so it inherits no high-water mark.
LAUNCHER = r"""
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:])
peaks = {"RssAnon": 0, "RssFile": 0}
while True:
    pid, status, usage = os.wait4(child.pid, os.WNOHANG)
    if pid:
        break
    try:
        with open(f"/proc/{child.pid}/status") as handle:
            for line in handle:
                key = line.split(":")[0]
                if key in peaks:
                    peaks[key] = max(peaks[key], int(line.split()[1]) * 1024)
    except OSError:
        pass
    time.sleep(0.005)
wall = time.perf_counter() - start
child.returncode = os.waitstatus_to_exitcode(status)
print("RUSAGE " + json.dumps({"rc": child.returncode, "wall": wall, "maxrss": usage.ru_maxrss * 1024,
                              "anon": peaks["RssAnon"], "file": peaks["RssFile"]}), flush=True)
"""

# The measured programs report VmHWM, their peak RSS up to the end of the work, besides the kernel's
# whole-process maximum: interpreter teardown touches ~100 MiB more of torch's shared libraries.
IMPORTS = (
    "import sys, json, time\n"
    "import torch, transformers, himtok_lmm_adapter\n"
    "from transformers import InternVLForConditionalGeneration\n"
    "from himtok_lmm_adapter.official import convert_official\n"
    "def hwm():\n"
    "    with open('/proc/self/status') as handle:\n"
    "        return next(int(x.split()[1]) * 1024 for x in handle if x.startswith('VmHWM:'))\n"
)
IMPORT_ONLY = IMPORTS + "print('RESULT ' + json.dumps({'hwm': hwm()}))\n"
# safetensors' `load_file` maps the file lazily: nothing is resident until read. A converter reads every
# tensor, so the mmap variant touches each one (its pages then count as file-backed RSS); the copied variant
# holds private copies (what a cast, a `torch.load` or a `.contiguous()` split would hold).
NAIVE = IMPORTS + (
    "from safetensors.torch import load_file\n"
    "copy = sys.argv[1] == 'copy'\n"
    "state = {}\n"
    "for path in sys.argv[2:]:\n"
    "    loaded = load_file(path)\n"
    "    for key, tensor in loaded.items():\n"
    "        state[key] = tensor.clone() if copy else tensor\n"
    "        if tensor.numel():\n"
    "            state[key].reshape(-1).view(torch.uint8).max()\n"
    "    del loaded\n"
    "nbytes = sum(t.numel() * t.element_size() for t in state.values())\n"
    "print('RESULT ' + json.dumps({'tensors': len(state), 'bytes': nbytes, 'hwm': hwm()}))\n"
)
CONVERT = IMPORTS + (
    "start = time.perf_counter()\n"
    "report = convert_official(sys.argv[1], sys.argv[2], mask_heads=4, hashes=False, shard_bytes=int(sys.argv[3]))\n"
    "print('RESULT ' + json.dumps({'seconds': time.perf_counter() - start, 'shards': report['output_shards'],\n"
    "                              'tensors': report['tensors_written'], 'hwm': hwm()}))\n"
)


def parse_size(text: str) -> int:
    """`256MB`, `1GB`, `1.5G` -> bytes (binary units, as the convert_official CLI reads them)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)B?\s*", text, flags=re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 256MB, 1GB)")
    return int(float(match.group(1)) * {"": 1, "K": 1 << 10, "M": MIB, "G": GIB}[match.group(2).upper()])


def human(nbytes: float) -> str:
    return f"{nbytes / GIB:.2f} GiB" if nbytes >= GIB else f"{nbytes / MIB:.0f} MiB"


# ---------------------------------------------------------------------------------------------- the source


def layer_bytes() -> int:
    qkv = (HEADS + 2 * KV_HEADS) * HEAD_DIM * HIDDEN
    return (qkv + HIDDEN * HIDDEN + 3 * INTERMEDIATE * HIDDEN + 2 * HIDDEN) * DTYPE.itemsize


def golden_tensors(prefixes: tuple[str, ...]) -> Iterator[tuple[str, torch.Tensor]]:
    with safe_open(str(GOLDEN / "model.safetensors"), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 (safe_open handles are not mappings)
            if key.startswith(prefixes):
                tensor = handle.get_tensor(key)
                yield key, tensor.to(DTYPE) if tensor.is_floating_point() else tensor


def source_tensors(layers: int, vocab: int, vit_hidden: int, seed: int) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of the synthetic release, one at a time, in the order a release lists them."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.empty(shape, dtype=DTYPE).normal_(0.0, 0.02, generator=gen)

    def norm(size: int) -> torch.Tensor:
        return torch.ones(size, dtype=DTYPE)

    lm = "language_model.model"
    yield f"{lm}.tok_embeddings.weight", rand(vocab, HIDDEN)
    for i in range(layers):
        p = f"{lm}.layers.{i}"
        yield f"{p}.attention.wqkv.weight", rand((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN)
        yield f"{p}.attention.wo.weight", rand(HIDDEN, HIDDEN)
        yield f"{p}.feed_forward.w1.weight", rand(INTERMEDIATE, HIDDEN)
        yield f"{p}.feed_forward.w3.weight", rand(INTERMEDIATE, HIDDEN)
        yield f"{p}.feed_forward.w2.weight", rand(HIDDEN, INTERMEDIATE)
        yield f"{p}.attention_norm.weight", norm(HIDDEN)
        yield f"{p}.ffn_norm.weight", norm(HIDDEN)
    yield f"{lm}.norm.weight", norm(HIDDEN)
    yield "language_model.output.weight", rand(vocab, HIDDEN)
    yield from golden_tensors(("vision_model.", "mlp1.0."))
    yield "mlp1.1.weight", rand(HIDDEN, vit_hidden * 4)
    yield "mlp1.1.bias", rand(HIDDEN)
    yield "mlp1.3.weight", rand(HIDDEN, HIDDEN)
    yield "mlp1.3.bias", rand(HIDDEN)
    yield from golden_tensors(("mask_decoder.",))


@dataclass
class Source:
    layers: int
    total: int  # bytes of all tensors
    largest: int  # bytes of the largest shard
    files: list[Path]
    tensors: int
    mask_tensors: int


def build_source(directory: Path, size_bytes: int, shard_bytes: int, seed: int = 0) -> Source:
    """Write the synthetic release into `directory`, holding at most one source shard in memory."""
    directory.mkdir(parents=True)
    official = json.loads((GOLDEN / "config.json").read_text())
    llm, vit_hidden = official["llm_config"], official["vision_config"]["hidden_size"]
    vocab = llm["vocab_size"]
    fixed = 2 * vocab * HIDDEN * DTYPE.itemsize + 4 * HIDDEN * HIDDEN * DTYPE.itemsize
    layers = max(1, round((size_bytes - fixed) / layer_bytes()))
    llm.update(
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        num_hidden_layers=layers,
        torch_dtype="bfloat16",
    )
    official.update(hidden_size=HIDDEN, torch_dtype="bfloat16")
    (directory / "config.json").write_text(json.dumps(official, indent=2) + "\n")
    for name in COPIED_FILES:
        shutil.copyfile(GOLDEN / name, directory / name)

    groups: list[list[str]] = [[]]
    pending: dict[str, torch.Tensor] = {}
    sizes: list[int] = []
    total = 0

    def flush() -> None:
        path = directory / f"part-{len(sizes):05d}.safetensors"
        save_file(pending, str(path), metadata={"format": "pt"})
        sizes.append(sum(t.numel() * t.element_size() for t in pending.values()))
        groups.append([])
        pending.clear()

    for key, tensor in source_tensors(layers, vocab, vit_hidden, seed):
        nbytes = tensor.numel() * tensor.element_size()
        if pending and sum(t.numel() * t.element_size() for t in pending.values()) + nbytes > shard_bytes:
            flush()
        pending[key] = tensor
        groups[-1].append(key)
        total += nbytes
    flush()
    groups.pop()
    count = len(sizes)
    weight_map = {}
    for index, keys in enumerate(groups):
        name = f"model-{index + 1:05d}-of-{count:05d}.safetensors"
        (directory / f"part-{index:05d}.safetensors").rename(directory / name)
        weight_map.update(dict.fromkeys(keys, name))
    index_json = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index_json, indent=2) + "\n")
    return Source(
        layers=layers,
        total=total,
        largest=max(sizes),
        files=[directory / f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)],
        tensors=len(weight_map),
        mask_tensors=sum(k.startswith("mask_decoder.") for k in weight_map),
    )


# ------------------------------------------------------------------------------------------- measurement


def measure(code: str, *args: str) -> dict[str, Any]:
    """Run `python -c code args` in a fresh process (under the launcher); its peak RSS, wall time and result."""
    argv = [sys.executable, "-c", LAUNCHER, sys.executable, "-c", code, *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = done.stdout.splitlines()
    usage = next((json.loads(x[7:]) for x in lines if x.startswith("RUSAGE ")), None)
    result = next((json.loads(x[7:]) for x in lines if x.startswith("RESULT ")), None)
    if usage is None or usage["rc"] != 0 or result is None:
        raise RuntimeError(f"measured run failed:\n{done.stdout}\n{done.stderr}")
    return {**usage, **result}


def verify(out: Path, shard_limit: int, mask_tensors: int) -> str:
    """Every tensor of the target model is in the index with its shape; shards respect the limit."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    config = InternVLConfig.from_pretrained(out)
    with torch.device("meta"):
        expected = {
            k: tuple(v.shape) for k, v in InternVLForConditionalGeneration(config).state_dict().items()
        }
    index = out / "model.safetensors.index.json"
    weight_map = json.loads(index.read_text())["weight_map"] if index.is_file() else {}
    files = sorted(set(weight_map.values())) or ["model.safetensors"]
    found: dict[str, tuple[int, ...]] = {}
    biggest = 0
    for name in files:
        biggest = max(biggest, (out / name).stat().st_size)
        with safe_open(str(out / name), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118
                found[key] = tuple(handle.get_slice(key).get_shape())
    if weight_map and set(weight_map) != set(found):
        raise AssertionError("the index does not list exactly the tensors of the shards")
    if found != expected:
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        raise AssertionError(f"output differs from the model: missing {missing[:4]}, extra {extra[:4]}")
    with safe_open(str(out / "mask_tokenizer" / "model.safetensors"), framework="pt") as handle:
        if len(list(handle.keys())) != mask_tensors:
            raise AssertionError("mask tokenizer tensors missing")
    over = " (OVER LIMIT)" if biggest > shard_limit + MIB else ""
    return f"{len(found)} tensors in {len(files)} shards, largest file {human(biggest)}{over}"


def print_table(
    base: dict[str, Any],
    naive_map: dict[str, Any],
    naive_copy: dict[str, Any],
    runs: list[tuple[int, dict[str, Any]]],
    src: Source,
) -> None:
    total, largest = src.total, src.largest
    print()
    print(
        f"{'run (fresh process)':<28} {'out shard':>9} {'peak RSS':>9} {'-import':>9} {'x/outsh':>7} "
        f"{'x/srcsh':>7} {'x/total':>7} {'anon pk':>9} {'file pk':>9} {'ru_maxrss':>9} {'wall s':>6}"
    )
    rows = [
        ("import only", None, base),
        ("naive load_file (mmap)", None, naive_map),
        ("naive load-all (copied)", None, naive_copy),
    ] + [("streaming convert_official", limit, r) for limit, r in runs]
    for name, limit, r in rows:
        over = r["hwm"] - base["hwm"]
        per_shard = f"{over / limit:7.2f}" if limit else f"{'-':>7}"
        print(
            f"{name:<28} {human(limit) if limit else '-':>9} {human(r['hwm']):>9} {human(over):>9} {per_shard} "
            f"{over / largest:7.2f} {over / total:7.2f} {human(r['anon']):>9} {human(r['file']):>9} "
            f"{human(r['maxrss']):>9} {r['wall']:6.1f}"
        )
    print(
        "peak RSS: VmHWM at the end of the work; -import = x = peak RSS - import-only peak; x/outsh, x/srcsh,\n"
        "x/total: x over the output shard limit, the largest source shard, the source size; anon/file pk:\n"
        "sampled peaks of RssAnon / RssFile (mapped safetensors pages are file-backed); ru_maxrss: whole\n"
        "process incl. interpreter teardown; wall s: process incl. imports"
    )
    print()
    for limit, r in runs:
        print(
            f"shard limit {human(limit)}: naive/streaming peak {naive_map['hwm'] / r['hwm']:.2f}x (mmap), "
            f"{naive_copy['hwm'] / r['hwm']:.2f}x (copied); naive/streaming x "
            f"{(naive_map['hwm'] - base['hwm']) / max(r['hwm'] - base['hwm'], 1):.1f}x (mmap); "
            f"convert_official itself {r['seconds']:.1f} s ({total / r['seconds'] / GIB:.2f} GiB/s), "
            f"{r['shards']} output shards\n  check: {r['check']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~0.3 GiB source, smaller shards")
    parser.add_argument("--size-gb", type=float, default=None, help="source size in GiB (default 2.0)")
    parser.add_argument("--source-shard-mb", type=float, default=None, help="source shard MiB (default 400)")
    parser.add_argument(
        "--shard-size", type=parse_size, nargs="+", default=None, help="output shard limits (256MB 1GB)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the temp folder goes (default $TMPDIR)"
    )
    args = parser.parse_args()
    size_gb = args.size_gb if args.size_gb is not None else (0.3 if args.quick else 2.0)
    source_mb = args.source_shard_mb if args.source_shard_mb is not None else (100 if args.quick else 400)
    limits = args.shard_size or ([64 * MIB, 256 * MIB] if args.quick else [256 * MIB, GIB])
    if not (GOLDEN / "config.json").is_file():
        sys.exit(f"the golden checkpoint is not at {GOLDEN} (set HIMTOK_SHARED to the shared/ folder)")
    workdir = args.workdir or Path(tempfile.gettempdir())
    need = 2.3 * size_gb * GIB
    free = shutil.disk_usage(workdir).free
    if free < need:
        sys.exit(f"{workdir} has {human(free)} free; this run needs about {human(need)} (use --workdir)")

    tmp = Path(tempfile.mkdtemp(prefix="bench_convert-", dir=workdir))
    try:
        start = time.perf_counter()
        src = build_source(tmp / "src", int(size_gb * GIB), int(source_mb * MIB))
        build_s = time.perf_counter() - start
        print(
            f"source: {human(src.total)} bf16 in {len(src.files)} shards (largest {human(src.largest)}), "
            f"InternLM2 {src.layers} layers x hidden {HIDDEN}, MLP {INTERMEDIATE}, {HEADS}/{KV_HEADS} heads, "
            f"{src.tensors} tensors; built in {build_s:.1f} s"
        )
        files = [str(p) for p in src.files]
        base = measure(IMPORT_ONLY)
        naive_map = measure(NAIVE, "mmap", *files)
        naive_copy = measure(NAIVE, "copy", *files)
        runs = []
        for limit in limits:
            out = tmp / f"out-{limit}"
            run = measure(CONVERT, str(tmp / "src"), str(out), str(limit))
            run["check"] = verify(out, limit, src.mask_tensors)
            shutil.rmtree(out)
            runs.append((limit, run))
        print_table(base, naive_map, naive_copy, runs, src)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
