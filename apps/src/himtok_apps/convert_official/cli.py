"""Command line of ``uv run apps/convert_official``: an official release -> a transformers-native directory."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from himtok_lmm_adapter.official import OfficialFormatError, convert_official
from tqdm import tqdm

from himtok_apps.cli_common import OneLineParser, fail

PROG = "convert_official"
DESCRIPTION = """\
Convert an official InternVL / HiMTok release into a directory that loads with plain transformers and himtok:
  HiMTokModel.from_pretrained(OUT)          (a release with the mask decoder, e.g. InternVL2_5-HiMTok-8B)
  InternVLForConditionalGeneration          (a plain InternVL2.5/3 release: use it as --lmm for stage 2)
  MaskTokenizer.from_pretrained(OUT)        (a bare himtok.pth)

Reads config.json, model.safetensors or its sharded index, and the slow-tokenizer files; never imports or runs
code from the source. Strict: every source tensor is used once and every target tensor is filled, or nothing is
written. Streams shard by shard: peak memory is about one output shard (--shard-size)."""

EPILOG = """\
Example (the released 8B model, bf16, about 16 GB):
  uv run apps/convert_official --src InternVL2_5-HiMTok-8B --out himtok-8b
  uv run apps/convert_official --src InternVL2_5-HiMTok-8B/himtok.pth --out himt-tokenizer"""


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)B?\s*", text, flags=re.IGNORECASE)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 2GB, 500MB)")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2).upper()]
    size = int(float(match.group(1)) * scale)
    if size < 1:
        raise argparse.ArgumentTypeError(f"the shard size must be positive, got {text!r}")
    return size


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--src", required=True, metavar="PATH", help="official release directory, or himtok.pth"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (must not exist)")
    parser.add_argument(
        "--dtype", choices=("bf16", "fp16", "fp32"), help="cast floating weights (default: keep the source's)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument(
        "--mask-heads",
        type=int,
        metavar="N",
        help="attention heads of the mask tokenizer (official checkpoints do not record it; default width // 64)",
    )
    parser.add_argument(
        "--shard-size",
        type=parse_size,
        default="2GB",
        metavar="SIZE",
        help="largest output shard (default 2GB)",
    )
    parser.add_argument(
        "--no-hash", action="store_true", help="skip the sha256 of the source files in the report"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mask_heads is not None and args.mask_heads < 1:
        fail(PROG, f"--mask-heads must be positive, got {args.mask_heads}")
    bar = None if args.quiet else tqdm(total=0, unit="B", unit_scale=True, desc="converting", leave=False)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        report = convert_official(
            args.src,
            args.out,
            dtype=args.dtype,
            overwrite=args.overwrite,
            mask_heads=args.mask_heads,
            shard_bytes=args.shard_size,
            hashes=not args.no_hash,
            progress=progress,
        )
    except (OfficialFormatError, ValueError) as error:
        if bar is not None:
            bar.close()
        fail(PROG, str(error))
    if bar is not None:
        bar.close()
    print(
        f"{PROG}: wrote {args.out} ({report['kind']}, {report['tensors_written']} tensors, {report['dtype']})"
    )
    ids = report.get("mask_token_ids")
    if ids:
        print(
            f"  mask tokens: <|mt_start|> {ids['mt_start']}, <|mt_end|> {ids['mt_end']}, <|mt_0|> {ids['mt_0']}, "
            f"vocabulary {report['vocab_size']}"
        )
    for note in report.get("notes", []):
        print(f"  {note}", file=sys.stderr if note.startswith("WARNING") else sys.stdout)
    return 0
