"""Predictions made elsewhere: one JSON object per line, keyed by ``sample_id``.

``{"sample_id": "1234:5678", "mask": {"size": [H, W], "counts": "..."}}``: a COCO RLE at the image's size
(``counts`` compressed text or an uncompressed list); ``"mask": "masks/1234_5678.png"``: a PNG path, relative to
the predictions file's folder; ``"mask": null``: no object (an empty mask). REC: ``"answer": "<the model's text>"``.
Optional ``"no_target": true|false``: an explicit reject flag (gRefCOCO), used by the standard protocol instead of
"the mask is empty".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from himtok_apps.eval import masks as M
from himtok_apps.eval.samples import Sample


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    """Every line by sample id; a malformed line or a sample id given twice raises ``ValueError``."""
    if not path.is_file():
        raise ValueError(f"--predictions {path} does not exist")
    out: dict[str, dict[str, Any]] = {}
    seen_at: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("sample_id"), str | int):
                raise ValueError(f"{path}:{number}: each line needs a 'sample_id'")
            key = str(record["sample_id"])
            if key in out:
                raise ValueError(f"{path}:{number}: sample_id {key!r} again (first on line {seen_at[key]})")
            out[key] = record
            seen_at[key] = number
    return out


def check_coverage(samples: Sequence[Sample], predictions: dict[str, dict[str, Any]], what: str) -> None:
    """Every sample exactly once: a sample without a prediction raises ``ValueError`` (with a few ids)."""
    missing = [s.sample_id for s in samples if s.sample_id not in predictions]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(f"{what}: {len(missing)} of {len(samples)} samples have no prediction ({shown})")


def unknown_ids(known: set[str], predictions: dict[str, dict[str, Any]]) -> list[str]:
    return [key for key in predictions if key not in known]


def prediction_rle(record: dict[str, Any], sample: Sample, base: Path) -> M.Rle:
    """The record's mask as an RLE of the sample's exact size (``ValueError`` names the sample)."""
    if "mask" not in record:
        raise ValueError(f"sample {sample.sample_id}: the prediction has no 'mask' (use null for no object)")
    value = record["mask"]
    try:
        if value is None:
            return M.empty(sample.height, sample.width)
        if isinstance(value, str):
            path = Path(value) if Path(value).is_absolute() else base / value
            if not path.is_file():
                raise ValueError(f"mask file {path} does not exist")
            return M.from_png(path, sample.height, sample.width)
        return M.from_json(value, sample.height, sample.width)
    except ValueError as error:
        raise ValueError(f"sample {sample.sample_id}: {error}") from None


def reject_flag(record: dict[str, Any]) -> bool | None:
    value = record.get("no_target")
    return None if value is None else bool(value)
