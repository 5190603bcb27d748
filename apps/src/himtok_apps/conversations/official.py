"""``official:META.json``: the official HiMTok/InternVL data layout, read the way its loader reads it.

The meta JSON maps a dataset name to ``{"root", "annotation", "repeat_time", ...}``. Each annotation JSONL line
holds ``image`` and ``mask`` (paths joined to ``root``), and ``conversations`` with the 32-token placeholders.
As in the official loader: ``<image>\\n`` is prepended to the first turn when missing, ``repeat_time`` below 1
keeps the first fraction of the lines and above 1 repeats them, images are converted to RGB, masks to ``L``.
Beyond it: ``mask`` may be a list (one path per placeholder, in order); answers with pre-computed codes
become placeholders again (the trainer recomputes codes from the mask, as the official code overwrites them);
masks are binarised at mid-grey. Lines are parsed when drawn: a malformed line, a missing image or mask, a
mask of another size than its image, or placeholders that do not match the masks are skipped and counted.

Official paths are relative to the folder the official scripts run in. Without ``BASE_DIR`` they are looked
up from the working directory, the meta file's folder and its parent; if the meta file sits in a renamed copy
of the folder its paths start with (``../shared/data/himtok-examples`` is the official ``example/``), that
leading folder is mapped onto the meta file's folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from himtok_prompt_templates import IMAGE_TOKEN

from himtok_apps.conversations.images import load_mask, load_rgb
from himtok_apps.conversations.sample import (
    ConversationSample,
    SampleError,
    normalize_mask_spans,
    validate_sample,
)
from himtok_apps.conversations.source import ConversationSource


@dataclass(frozen=True)
class _Dataset:
    name: str
    root: Path
    lines: list[tuple[int, str]]  # (line number, text), blank lines dropped
    repeat: int

    def __len__(self) -> int:
        return len(self.lines) * self.repeat


def _relocated(meta_dir: Path, prefix: tuple[str, ...]) -> Callable[[str], Path]:
    """Paths starting with ``prefix`` (the meta file's folder under its official name) map into ``meta_dir``."""

    def resolve(p: str) -> Path:
        own = Path(p).parts
        if tuple(own[: len(prefix)]) == prefix:
            return meta_dir.joinpath(*own[len(prefix) :])
        return meta_dir.parent / p

    return resolve


def _resolver(annotation: str, meta_dir: Path, base: Path | None) -> Callable[[str], Path] | None:
    """A function mapping official relative paths to files, chosen so that ``annotation`` exists."""
    if base is not None:
        return lambda p: base / p
    if Path(annotation).is_absolute():
        return lambda p: Path(p) if Path(p).is_absolute() else meta_dir / p
    for folder in (Path.cwd(), meta_dir, meta_dir.parent):
        if (folder / annotation).is_file():
            return folder.joinpath
    parts = Path(annotation).parts
    for cut in range(1, len(parts)):
        if meta_dir.joinpath(*parts[cut:]).is_file():
            return _relocated(meta_dir, parts[:cut])
    return None


def _repeat_lines(
    lines: list[tuple[int, str]], repeat: float, name: str, meta: Path
) -> tuple[list[tuple[int, str]], int]:
    if not repeat > 0:
        raise ValueError(f"{meta}: dataset {name!r} has repeat_time {repeat}, expected a positive number")
    if repeat < 1:
        return lines[: int(len(lines) * repeat)], 1
    if repeat != int(repeat):
        raise ValueError(f"{meta}: dataset {name!r} repeat_time {repeat} above 1 must be an integer")
    return lines, int(repeat)


class OfficialSource(ConversationSource):
    """Every line of every dataset of an official meta JSON (``repeat_time`` applied), in meta order."""

    def __init__(
        self, meta: Path, base: Path | None = None, *, limit: int | None = None, name: str | None = None
    ) -> None:
        self.meta = Path(meta)
        self.name = name or f"official:{self.meta.name}"
        try:
            collections = json.loads(self.meta.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{self.meta}: not a readable meta JSON ({error})") from None
        if not isinstance(collections, dict) or not collections:
            raise ValueError(f"{self.meta}: the meta JSON must map dataset names to their settings")
        self.datasets: list[_Dataset] = []
        budget = limit
        for ds_name, entry in collections.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("annotation"), str):
                raise ValueError(f"{self.meta}: dataset {ds_name!r} has no 'annotation' path")
            annotation = entry["annotation"]
            resolve = _resolver(annotation, self.meta.parent, base)
            if resolve is None:
                raise ValueError(
                    f"{self.meta}: annotation {annotation!r} of {ds_name!r} not found from the working directory, "
                    f"the meta file's folder or its parent; give BASE_DIR (official:META.json,BASE_DIR)"
                )
            try:
                text = resolve(annotation).read_text()
            except (OSError, UnicodeDecodeError) as error:
                raise ValueError(f"{self.meta}: annotation of {ds_name!r} unreadable ({error})") from None
            lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
            if budget is not None:
                lines, budget = lines[:budget], max(budget - len(lines), 0)
            lines, repeat = _repeat_lines(lines, float(entry.get("repeat_time", 1)), ds_name, self.meta)
            root = resolve(str(entry.get("root", "")))
            if lines:
                self.datasets.append(_Dataset(str(ds_name), root, lines, repeat))

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def _locate(self, index: int) -> tuple[_Dataset, int, str]:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} outside [0, {len(self)})")
        for dataset in self.datasets:
            if index < len(dataset):
                number, line = dataset.lines[index % len(dataset.lines)]
                return dataset, number, line
            index -= len(dataset)
        raise AssertionError("unreachable")

    def item_key(self, index: int) -> str:
        dataset, number, _ = self._locate(index)
        return f"{dataset.name} line {number}"

    def sample(self, index: int) -> ConversationSample:
        dataset, number, line = self._locate(index)
        try:
            record = json.loads(line)
        except ValueError as error:
            raise SampleError(f"malformed JSON: {error}") from None
        if not isinstance(record, dict):
            raise SampleError("malformed JSON: the line is not an object")
        image_field = record.get("image")
        if isinstance(image_field, list):
            raise SampleError("unsupported record: several images")
        if not isinstance(image_field, str) or not image_field:
            raise SampleError("unsupported record: no image (text-only lines are not segmentation data)")
        turns = record.get("conversations")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, dict) for t in turns):
            raise SampleError("bad conversation: conversations must be a non-empty list of turns")
        turns = [dict(t) for t in turns]
        if isinstance(turns[0].get("value"), str) and IMAGE_TOKEN not in turns[0]["value"]:
            turns[0]["value"] = f"{IMAGE_TOKEN}\n{turns[0]['value']}"
        for turn in turns:
            if isinstance(turn.get("value"), str):
                turn["value"] = normalize_mask_spans(turn["value"])
        mask_field = record.get("mask")
        if mask_field is None:
            mask_paths: list[str] = []
        elif isinstance(mask_field, str) and mask_field:
            mask_paths = [mask_field]
        elif isinstance(mask_field, list) and all(isinstance(m, str) and m for m in mask_field):
            mask_paths = list(mask_field)
        else:
            raise SampleError("bad mask field: expected a path or a list of paths")
        image_path = dataset.root / image_field
        image = load_rgb(image_path)
        size = (image.height, image.width)
        masks = [load_mask(dataset.root / m, size) for m in mask_paths]
        meta = {
            "task": "official",
            "dataset": dataset.name,
            "line": number,
            "image_path": str(image_path),
            "mask_paths": [str(dataset.root / m) for m in mask_paths],
        }
        key = f"{dataset.name} line {number}"
        return validate_sample(ConversationSample(image, turns, masks, self.name, key, meta))
