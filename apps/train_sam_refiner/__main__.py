"""``uv run apps/train_sam_refiner --help``: fine-tune the SAM refiner on coarse masks made by a mask tokenizer."""

import sys

from himtok_apps.sam_refiner.cli import main

if __name__ == "__main__":
    sys.exit(main())
