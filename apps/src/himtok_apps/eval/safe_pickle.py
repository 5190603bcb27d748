"""Read REFER's ``refs(*.p)`` pickles without letting them run code.

The REFER pickles hold only dicts, lists, strings and numbers, none of which needs a class lookup. Every way a
pickle runs code (``REDUCE``, ``BUILD``, ``INST``, ``OBJ``, ``NEWOBJ``, ``STACK_GLOBAL``) first resolves a
callable through ``find_class``; refusing every lookup therefore refuses every hostile file, before anything in
it is called. Persistent ids are refused by the base class already.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, NoReturn


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a class or function: plain-data files never do, so it is refused."""


class PlainDataUnpickler(pickle.Unpickler):
    """An unpickler for plain Python data only: every global lookup raises ``UnsafePickleError``."""

    def find_class(self, module: str, name: str) -> NoReturn:
        raise UnsafePickleError(
            f"refused to load {module}.{name}: this file should hold only plain data (dicts, lists, strings, numbers)"
        )


def loads_plain(data: bytes) -> Any:
    """Unpickle plain data. Python 2 byte strings are read as UTF-8 (Latin-1 when that fails)."""
    try:
        return PlainDataUnpickler(io.BytesIO(data), encoding="utf-8").load()
    except UnicodeDecodeError:
        return PlainDataUnpickler(io.BytesIO(data), encoding="latin1").load()


def load_plain_pickle(path: str | Path) -> Any:
    """``loads_plain`` of a file; a refused or corrupt file raises ``ValueError`` naming it."""
    path = Path(path)
    try:
        return loads_plain(path.read_bytes())
    except UnsafePickleError as error:
        raise ValueError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError, TypeError) as error:
        raise ValueError(f"{path} is not a readable pickle: {error}") from None
