"""Pieces every command line of the apps shares."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line on stderr (exit status 2), without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fail(prog: str, message: str) -> NoReturn:
    """Bad input found after parsing: one line on stderr, exit status 2."""
    print(f"{prog}: error: {message}".replace("\n", " "), file=sys.stderr)
    raise SystemExit(2)
