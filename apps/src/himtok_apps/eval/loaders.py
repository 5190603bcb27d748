"""``load_benchmark(name, split, root)``: the right loader for each benchmark."""

from __future__ import annotations

from pathlib import Path

from himtok_apps.eval.reasonseg import load_reasonseg
from himtok_apps.eval.refer import load_grefcoco, load_refer
from himtok_apps.eval.samples import BENCHMARKS, Benchmark


def load_benchmark(
    name: str,
    split: str,
    root: str | Path,
    *,
    split_by: str | None = None,
    image_dir: str | Path | None = None,
) -> Benchmark:
    """Load one split of a benchmark from the data root; a missing or malformed file raises ``ValueError``
    naming the path the layout expects."""
    root = Path(root)
    images = Path(image_dir) if image_dir is not None else None
    if not root.is_dir():
        raise ValueError(f"--data-root {root} is not a folder")
    if name in ("refcoco", "refcoco+", "refcocog"):
        return load_refer(name, split, root, split_by, images)
    if name == "grefcoco":
        return load_grefcoco(split, root, images)
    if name == "reasonseg":
        return load_reasonseg(split, root)
    raise ValueError(f"unknown benchmark {name!r}; benchmarks: {', '.join(BENCHMARKS)}")
