"""The tensors of an official checkpoint directory, read shard by shard without loading them all.

`SourceCheckpoint` knows every tensor's name, shape, dtype and file from the safetensors headers alone (a few
KB per shard), so the whole conversion can be planned and checked before a single weight is read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from himtok_lmm_adapter.official.config import OfficialFormatError

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    file: str

    @property
    def numel(self) -> int:
        n = 1
        for size in self.shape:
            n *= size
        return n


class SourceCheckpoint:
    """Tensor metadata of `model.safetensors` or of the shards of `model.safetensors.index.json`."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        index = self.directory / INDEX_NAME
        single = self.directory / SINGLE_NAME
        if index.is_file():
            try:
                weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
            except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
                raise OfficialFormatError(
                    f"{index} is not a safetensors index with a weight_map: {err}"
                ) from err
            self.files = sorted(set(weight_map.values()))
            missing = [name for name in self.files if not (self.directory / name).is_file()]
            if missing:
                raise OfficialFormatError(f"missing shard(s) listed in {INDEX_NAME}: {', '.join(missing)}")
        elif single.is_file():
            weight_map = {}
            self.files = [SINGLE_NAME]
        else:
            raise OfficialFormatError(
                f"{self.directory} holds neither {INDEX_NAME} nor {SINGLE_NAME}: no weights to convert"
            )
        self.tensors: dict[str, TensorInfo] = {}
        for name in self.files:
            for info in self._read_header(name):
                if info.name in self.tensors:
                    raise OfficialFormatError(f"tensor {info.name} appears in two shards")
                self.tensors[info.name] = info
        if weight_map:
            listed_elsewhere = [
                k for k, f in weight_map.items() if k in self.tensors and self.tensors[k].file != f
            ]
            absent = [k for k in weight_map if k not in self.tensors]
            unlisted = [k for k in self.tensors if k not in weight_map]
            for problem, keys in (
                ("listed in the index but absent from their shard", absent),
                ("found in a shard the index does not name for them", listed_elsewhere),
                ("present in shards but not in the index", unlisted),
            ):
                if keys:
                    raise OfficialFormatError(f"tensors {problem}: {name_list(keys)}")

    def _read_header(self, name: str) -> Iterator[TensorInfo]:
        path = self.directory / name
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open handles are not mappings)
                    tensor_slice = handle.get_slice(key)
                    dtype_name = tensor_slice.get_dtype()
                    if dtype_name not in _DTYPES:
                        raise OfficialFormatError(f"{name}: tensor {key} has unsupported dtype {dtype_name}")
                    yield TensorInfo(key, tuple(tensor_slice.get_shape()), _DTYPES[dtype_name], name)
        except OfficialFormatError:
            raise
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise OfficialFormatError(f"cannot read {path} as safetensors: {err}") from err

    def read(self, key: str) -> torch.Tensor:
        """One tensor, copied out of a mapping that is closed at once.

        safetensors maps whole files and hands out views into the mapping; a view kept in an output buffer would
        keep its source file's pages resident. Copying from a short-lived mapping bounds the memory of a
        conversion by its output buffer.
        """
        info = self.tensors[key]
        with safe_open(str(self.directory / info.file), framework="pt", device="cpu") as handle:
            return handle.get_tensor(key).clone()

    def keys_by_file(self) -> dict[str, list[str]]:
        """Tensor names grouped by file, files in order, names in header order."""
        grouped: dict[str, list[str]] = {name: [] for name in self.files}
        for info in self.tensors.values():
            grouped[info.file].append(info.name)
        return grouped

    def file_sizes(self) -> dict[str, int]:
        return {name: (self.directory / name).stat().st_size for name in self.files}


def name_list(keys: list[str], limit: int = 8) -> str:
    """`n keys: a, b, ... (and m more)` on one line."""
    shown = ", ".join(keys[:limit])
    more = f" (and {len(keys) - limit} more)" if len(keys) > limit else ""
    return f"({len(keys)}) {shown}{more}"


def sha256_of(path: Path, chunk: int = 16 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
