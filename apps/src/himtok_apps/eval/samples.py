"""What the loaders produce: objects with their sentences (``Ref``), and the samples a protocol scores.

A ``Ref`` is one annotated object (REFER / G_REFER ref) or one ReasonSeg image, with all its texts. Protocols turn
refs into ``Sample``s: one per sentence (the standard protocol, REC), one per object with every sentence merged
(HiMTok's official referring segmentation), or one per image with its first text (ReasonSeg).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCHMARKS = ("refcoco", "refcoco+", "refcocog", "grefcoco", "reasonseg")


@dataclass(frozen=True)
class Sentence:
    sent_id: int | str
    sent: str  # lower-cased token join (REFER ``sent``); what the standard protocol prompts with
    raw: str  # original casing


@dataclass(frozen=True, eq=False)
class Ref:
    """One object (or ReasonSeg image) and how to draw its ground truth."""

    ref_id: int | str
    image_id: int | str
    image_path: Path
    height: int
    width: int
    sentences: tuple[Sentence, ...]
    # COCO segmentations (polygon lists or RLE dicts) of the target instances, crowd ones already removed
    # for gRefCOCO; empty for a no-target ref. ReasonSeg refs carry LabelMe ``shapes`` instead.
    segmentations: tuple[Any, ...] = ()
    shapes: tuple[dict[str, Any], ...] = ()
    box_xywh: tuple[float, float, float, float] | None = None
    no_target: bool = False
    subset: str = ""  # ReasonSeg: "short" or "long" (``is_sentence``)
    exif_transpose: bool = False  # ReasonSeg images are read upright (cv2 and the official loader do)


@dataclass(frozen=True, eq=False)
class Sample:
    """One scored unit: a prompt (``texts``) about one image, with its ground truth (through ``ref``)."""

    sample_id: str
    benchmark: str
    split: str
    ref: Ref
    texts: tuple[str, ...]  # one sentence, or every sentence of the object when merged
    raw: tuple[str, ...] = field(default=())

    @property
    def query(self) -> str:
        return " | ".join(self.texts)

    @property
    def height(self) -> int:
        return self.ref.height

    @property
    def width(self) -> int:
        return self.ref.width

    @property
    def subset(self) -> str:
        return self.ref.subset


@dataclass
class Benchmark:
    """A loaded benchmark split: its refs in file order, and the annotation files read (for the report)."""

    name: str
    split: str
    refs: list[Ref]
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    notes: list[str] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return len({ref.image_id for ref in self.refs})
