"""Speed of parse_response and build_conversation, against baselines measured in the same run.

    uv run python packages/prompt-templates/benchmarks/bench_parse.py [--quick]

Baselines:
* "regex extraction": what an evaluation script typically does (findall of mask tokens, then the official REC
  evaluation's box regex). It reports nothing about malformed pieces.
* "official REC regex": ``\\[*\\[(.*?),(.*?),(.*?),(.*?)\\]\\]*`` from the official evaluate_grounding.py, on a
  degenerate generation ("[" and n commas). Its lazy groups backtrack polynomially (about n^4).
* "f-string": the official segmentation turn written by hand.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Callable

from himtok_prompt_templates import build_conversation, parse_response

OFFICIAL_REC_BOX = re.compile(r"\[*\[(.*?),(.*?),(.*?),(.*?)\]\]*")
MASK_TOKEN = re.compile(r"<\|mt_(\d+)\|>")


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-3 mean seconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def regex_extraction(text: str) -> tuple[list[str], object]:
    return MASK_TOKEN.findall(text), OFFICIAL_REC_BOX.search(text)


def garbage(size: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    pieces = [
        "<|mt_start|>",
        "<|mt_end|>",
        "<|mt_",
        "<|mt_12|>",
        "<ref>",
        "</ref>",
        "<box>[",
        "]</box>",
        ", ",
        "9" * 30,
        "Yes. ",
        "no ",
        "\n",
        "<",
        "|>",
        "lorem ipsum ",
    ]
    out, length = [], 0
    while length < size:
        piece = rng.choice(pieces)
        out.append(piece)
        length += len(piece)
    return "".join(out)[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small repeat counts (well under a minute)")
    args = parser.parse_args()
    repeat = 200 if args.quick else 2000

    sample = {
        "expression": "the red car",
        "tokens": list(range(32)),
        "box": (10, 20, 300, 200),
        "width": 640,
        "height": 480,
    }
    response = build_conversation("segment_then_box", sample, 3)[1]["value"]
    rows: list[tuple[str, float, str, float]] = []

    rows.append(
        (
            "parse typical REC answer",
            timed(lambda: parse_response(response), repeat),
            "regex extraction",
            timed(lambda: regex_extraction(response), repeat),
        )
    )

    official = {"expression": "road", "tokens": [0] * 32}
    fstring = lambda: [  # noqa: E731
        {"from": "human", "value": "<image>\nSegment <ref>road</ref>."},
        {"from": "gpt", "value": "The mask appears at <|mt_start|>" + "<|mt_0|>" * 32 + "<|mt_end|>."},
    ]
    rows.append(
        (
            "build_conversation official",
            timed(lambda: build_conversation("segment", official, 0, style="official"), repeat),
            "f-string",
            timed(fstring, repeat),
        )
    )

    small, large = garbage(10_000), garbage(100_000)
    t_small = timed(lambda: parse_response(small), max(5, repeat // 20))
    t_large = timed(lambda: parse_response(large), max(2, repeat // 100))
    rows.append(("parse 100 kB garbage", t_large, "parse 10 kB garbage (x10)", t_small * 10))

    commas = [50, 100] if args.quick else [50, 100, 200]
    for n in commas:
        degenerate = "[" + "," * n
        rows.append(
            (
                f"parse '[' + {n} commas",
                timed(lambda d=degenerate: parse_response(d), 20),
                "official REC regex",
                timed(lambda d=degenerate: OFFICIAL_REC_BOX.search(d), 1),
            )
        )

    print(f"{'case':32} {'ours (us)':>12} {'baseline':28} {'base (us)':>12} {'ours/base':>10}")
    for name, ours, base_name, base in rows:
        print(f"{name:32} {ours * 1e6:12.1f} {base_name:28} {base * 1e6:12.1f} {ours / base:10.3f}")
    print(
        "ours/base > 1: ours is slower; the parser validates every piece and never raises, the baselines do neither."
    )


if __name__ == "__main__":
    main()
