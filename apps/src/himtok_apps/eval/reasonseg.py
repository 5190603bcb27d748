"""ReasonSeg (LISA): ``<root>/reason_seg/ReasonSeg/<split>/<stem>.jpg`` with ``<stem>.json`` beside each image.

Each JSON holds ``text`` (instructions; evaluation uses the first), ``is_sentence`` (long query) and LabelMe
``shapes``. JSON is read as UTF-8, falling back to cp1252 as LISA does. The ground truth has the size of the
image as cv2 reads it, that is upright after its EXIF orientation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from himtok_apps.eval.refer import sha256
from himtok_apps.eval.samples import Benchmark, Ref, Sentence

LAYOUT = Path("reason_seg") / "ReasonSeg"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLITS = ("val", "test", "train")
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def read_annotation(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("text"), list | str) or "shapes" not in data:
        raise ValueError(f"{path} is not a ReasonSeg annotation (needs 'text' and 'shapes')")
    return data


def upright_size(path: Path) -> tuple[int, int]:
    """(height, width) of the image after its EXIF orientation, from the header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"unreadable image {path}: {error}") from None
    return (width, height) if orientation in _TRANSPOSED else (height, width)


def load_reasonseg(split: str, root: Path) -> Benchmark:
    folder = root / LAYOUT / split
    if not folder.is_dir():
        raise ValueError(
            f"no ReasonSeg split {split!r}: expected the folder {folder} (<root>/{LAYOUT}/<split>/*.jpg + *.json)"
        )
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise ValueError(f"{folder} holds no images (*.jpg with a same-named .json each)")
    refs = []
    digest = {}
    for image in images:
        annotation = image.with_suffix(".json")
        if not annotation.is_file():
            raise ValueError(f"{image.name} has no annotation: expected {annotation}")
        data = read_annotation(annotation)
        texts = [data["text"]] if isinstance(data["text"], str) else [str(t) for t in data["text"]]
        if not texts:
            raise ValueError(f"{annotation} has an empty 'text' list")
        height, width = upright_size(image)
        long_query = bool(data.get("is_sentence", False))
        refs.append(
            Ref(
                ref_id=image.stem,
                image_id=image.stem,
                image_path=image,
                height=height,
                width=width,
                sentences=tuple(Sentence(i, t.strip(), t) for i, t in enumerate(texts)),
                shapes=tuple(s for s in data["shapes"] if isinstance(s, dict)),
                subset="long" if long_query else "short",
                exif_transpose=True,
            )
        )
        digest[annotation.name] = sha256(annotation)
    files = {str(folder): _folder_digest(digest)}
    return Benchmark("reasonseg", split, refs, files)


def _folder_digest(per_file: dict[str, str]) -> str:
    """One sha256 over the annotation files' names and sha256s."""
    joined = "\n".join(f"{name} {value}" for name, value in sorted(per_file.items()))
    return hashlib.sha256(joined.encode()).hexdigest()
