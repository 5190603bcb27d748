"""Resumable, data-parallel JSONL results: one line per finished item, per-rank shard files, merged in input order.

A run appends each finished item to its own file (``results.jsonl`` in one process, ``results.jsonl.rank<R>``
under torchrun) and flushes it, so a killed run loses at most the line being written (a torn last line is
ignored when reading). ``done_keys`` reads the main file and every shard left by any earlier run, whatever its
world size; ``merge_shards`` writes everything into the main file in input order and removes the shards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any


def shard_path(path: Path, rank: int) -> Path:
    return path.with_name(f"{path.name}.rank{rank}")


def shard_paths(path: Path) -> list[Path]:
    """Shard files of ``path`` left by any run, sorted by rank."""
    found = [p for p in path.parent.glob(f"{path.name}.rank*") if p.name[len(path.name) + 5 :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(path.name) + 5 :]))


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a file written by ``append_record``; a torn last line (no newline) is skipped."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # no newline after it: the write was interrupted
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not JSON ({error})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object")
        records.append(record)
    return records


def all_records(path: Path, key: str) -> dict[str, dict[str, Any]]:
    """Records of the main file and of every shard, by ``key`` (a later copy of a key replaces an earlier one)."""
    merged: dict[str, dict[str, Any]] = {}
    for source in [path, *shard_paths(path)]:
        for record in read_records(source):
            merged[str(record[key])] = record
    return merged


def done_keys(path: Path, key: str) -> set[str]:
    return set(all_records(path, key))


def append_record(handle: IO[str], record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


def write_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Replace ``path`` atomically (written beside it, then renamed)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def merge_shards(path: Path, order: Sequence[str], key: str) -> list[dict[str, Any]]:
    """Rewrite ``path`` with every record of it and its shards: those whose key is in ``order`` first, in that
    order, then any others in the order found; remove the shards. Returns the records written."""
    records = all_records(path, key)
    rank = {k: i for i, k in enumerate(order)}
    ordered = sorted(records.values(), key=lambda r: rank.get(str(r[key]), len(rank)))
    write_records(path, ordered)
    for shard in shard_paths(path):
        shard.unlink()
    return ordered
