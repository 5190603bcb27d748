"""``uv run apps/eval --help``: RefCOCO/+/g, gRefCOCO, ReasonSeg and REC by the standard and official protocols."""

import sys

from himtok_apps.eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
