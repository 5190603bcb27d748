"""Reading official and own checkpoints into plain state dicts, and the strict key/shape report.

Sources understood by ``read_official_state_dict``:

* a mapping (state dict) already in memory;
* a ``.pth``/``.pt`` file of the official code: a raw state dict or ``{"model": state_dict}``, keys possibly
  prefixed ``module.``; read with ``torch.load(weights_only=True)``;
* a ``.safetensors`` file, e.g. an LMM checkpoint whose tokenizer tensors are prefixed ``mask_decoder.``;
* a sharded ``*.safetensors.index.json`` (only the shards holding ``mask_decoder.*`` tensors are opened);
* a directory holding one of ``model.safetensors.index.json``, ``model.safetensors``, ``himtok.pth``.

When any key starts with ``mask_decoder.``, only those keys are kept, with the prefix removed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor

LMM_PREFIX = "mask_decoder."
DDP_PREFIX = "module."
SAFETENSORS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def normalize_official_keys(state: Mapping[str, object]) -> dict[str, Tensor]:
    """Unwrap ``{"model": ...}``, strip ``module.``, keep and strip ``mask_decoder.`` keys when present."""
    inner = state.get("model") if isinstance(state, Mapping) else None
    if isinstance(inner, Mapping):
        state = inner
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise ValueError(f"checkpoint entry {key!r} is not a tensor ({type(value).__name__})")
        out[key.removeprefix(DDP_PREFIX)] = value
    if any(key.startswith(LMM_PREFIX) for key in out):
        out = {key[len(LMM_PREFIX) :]: value for key, value in out.items() if key.startswith(LMM_PREFIX)}
    return out


def _read_safetensors(path: Path, keys: set[str] | None = None) -> dict[str, Tensor]:
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        names = list(handle.keys())
        if keys is None:
            has_prefix = any(name.startswith(LMM_PREFIX) for name in names)
            keys = {name for name in names if name.startswith(LMM_PREFIX)} if has_prefix else set(names)
        return {name: handle.get_tensor(name) for name in names if name in keys}


def _read_index(path: Path) -> dict[str, Tensor]:
    try:
        weight_map: dict[str, str] = json.loads(path.read_text())["weight_map"]
    except (OSError, json.JSONDecodeError, KeyError) as err:
        raise ValueError(f"{path} is not a safetensors index with a weight_map: {err}") from err
    wanted = {key for key in weight_map if key.startswith(LMM_PREFIX)} or set(weight_map)
    state: dict[str, Tensor] = {}
    for shard in sorted({weight_map[key] for key in wanted}):
        shard_keys = {key for key in wanted if weight_map[key] == shard}
        state.update(_read_safetensors(path.parent / shard, shard_keys))
    return state


def read_official_state_dict(source: str | Path | Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Read any supported source (see module docstring) into a state dict with official key names."""
    if isinstance(source, Mapping):
        return normalize_official_keys(source)
    path = Path(source)
    if path.is_dir():
        for name in (
            "model.safetensors.index.json",
            SAFETENSORS_NAME,
            "himtok.pth",
            "mask_decoder.safetensors",
        ):
            if (path / name).is_file():
                return read_official_state_dict(path / name)
        raise ValueError(f"no checkpoint (index json, model.safetensors or himtok.pth) found in {path}")
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    if path.name.endswith(".index.json"):
        raw = _read_index(path)
    elif path.suffix == ".safetensors":
        raw = _read_safetensors(path)
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle errors come in many types
            raise ValueError(f"cannot read {path} as a weights-only torch checkpoint: {err}") from err
        if not isinstance(raw, Mapping):
            raise ValueError(f"{path} does not hold a state dict (got {type(raw).__name__})")
    return normalize_official_keys(raw)


def key_report(expected: Mapping[str, Tensor], given: Mapping[str, Tensor]) -> list[str]:
    """Problems that keep ``given`` from loading strictly into a model whose state dict is ``expected``."""
    problems: list[str] = []
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    for key, ref in expected.items():
        if key not in given:
            continue
        value = given[key]
        if tuple(value.shape) != tuple(ref.shape):
            problems.append(
                f"shape mismatch for {key}: checkpoint {tuple(value.shape)}, model {tuple(ref.shape)}"
            )
        elif value.is_floating_point() != ref.is_floating_point():
            problems.append(f"dtype mismatch for {key}: checkpoint {value.dtype}, model {ref.dtype}")
    return problems


def check_loadable(expected: Mapping[str, Tensor], given: Mapping[str, Tensor], source: str) -> None:
    """Raise ``ValueError`` with the full report when ``given`` does not match ``expected`` exactly."""
    problems = key_report(expected, given)
    if problems:
        raise ValueError(f"checkpoint {source} does not match the model:\n  " + "\n  ".join(problems))
