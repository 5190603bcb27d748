"""`himtok.json`: what a `HiMTokModel` directory records beside the transformers files.

The transformers config describes the network; this file describes how HiMTok talks to it: the chat format,
the image tiling, how many mask tokens an answer carries, and where the mask tokenizer lives.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from himtok_lmm_adapter.images import TilingConfig

SETTINGS_NAME = "himtok.json"
FORMAT_VERSION = 1


@dataclass
class HiMTokSettings:
    """Chat format, tiling and mask-token settings of a `HiMTokModel`."""

    chat_format: str = "internvl2_5"
    system_message: str | None = None  # None: the chat format's default
    tiling: TilingConfig = field(default_factory=TilingConfig)
    num_mask_tokens: int = 32
    codebook_size: int = 1024
    mask_tokenizer_dir: str = "mask_tokenizer"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format_version"] = FORMAT_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HiMTokSettings:
        data = dict(data)
        version = data.pop("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{SETTINGS_NAME} has format_version {version}; this version reads {FORMAT_VERSION}"
            )
        tiling = TilingConfig(**data.pop("tiling", {}))
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {SETTINGS_NAME} fields: {unknown}")
        return cls(tiling=tiling, **data)

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / SETTINGS_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> HiMTokSettings:
        path = Path(directory) / SETTINGS_NAME
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read {path}: {err}") from err
        return cls.from_dict(data)
