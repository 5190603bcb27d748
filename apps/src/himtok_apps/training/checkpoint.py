"""Atomic training checkpoints: ``checkpoints/step-NNNNNNN/`` plus a ``latest`` pointer.

A checkpoint folder is written under a temporary name and renamed when complete; the pointer file is then
replaced atomically. A run killed at any moment (even ``kill -9``) therefore leaves ``latest`` naming a
complete checkpoint. ``checkpoint/`` (the ``save_pretrained`` folder) is swapped in the same way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

STATE_NAME = "trainer_state.pt"
POINTER_NAME = "latest"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_pointer(folder: Path, name: str) -> None:
    tmp = folder / f".{POINTER_NAME}.tmp-{os.getpid()}"
    with open(tmp, "w") as handle:
        handle.write(name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / POINTER_NAME)
    _fsync_dir(folder)


def save_checkpoint(folder: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` (tensors, numbers, lists, dicts) as checkpoint ``step`` and point ``latest`` at it."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    final = folder / name
    tmp = folder / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with open(tmp / STATE_NAME, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_pointer(folder, name)
    for old in sorted(p for p in folder.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in folder.glob(".step-*.tmp-*"):  # left by a run killed while writing
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    pointer = folder / POINTER_NAME
    if not pointer.is_file():
        return None
    path = folder / pointer.read_text().strip()
    return path if (path / STATE_NAME).is_file() else None


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (``weights_only``: nothing arbitrary is unpickled)."""
    return torch.load(path / STATE_NAME, map_location=device, weights_only=True)


def swap_directory(tmp: Path, final: Path) -> None:
    """Replace ``final`` by the complete folder ``tmp`` (rename-based, never a half-written ``final``)."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
