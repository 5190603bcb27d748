"""`results.jsonl` of the runner on top of `himtok_apps.jsonl_shards` (shared with apps/eval), keyed by `id`.

One process appends to `results.jsonl` itself; under torchrun each rank appends to `results.jsonl.rank<R>` and
rank 0 merges them in input order. A line torn by a kill is cut off before new lines are appended, so the
file stays readable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from himtok_apps.jsonl_shards import all_records, append_record, merge_shards
from himtok_apps.jsonl_shards import shard_path as _shard_path

RESULTS_NAME = "results.jsonl"
KEY = "id"


def shard_path(out: Path, rank: int) -> Path:
    return _shard_path(out / RESULTS_NAME, rank)


def latest_records(out: Path) -> dict[str, dict[str, Any]]:
    """id -> its latest record, over `results.jsonl` and any shard files."""
    return all_records(out / RESULTS_NAME, KEY)


def done_ids(out: Path, *, retry_errors: bool = False) -> set[str]:
    """Ids that need no new run: every recorded id, or only those without `error` with `retry_errors`."""
    return {
        ident
        for ident, record in latest_records(out).items()
        if not (retry_errors and record.get("error") is not None)
    }


def merge_results(out: Path, order: Sequence[str]) -> int:
    """Rewrite `results.jsonl` with one line per id in input order; returns the number of lines."""
    return len(merge_shards(out / RESULTS_NAME, order, KEY))


def drop_torn_tail(path: Path) -> None:
    """Cut a last line that a kill left without its newline (it would glue onto the next line)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        data = handle.read()
        handle.truncate(data.rfind(b"\n") + 1)


class ResultsAppender:
    """Appends one JSON line per record, flushed line by line."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        drop_torn_tail(path)
        self.path = path
        self._handle: TextIO = path.open("a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        append_record(self._handle, record)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResultsAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
