"""``uv run apps/infer``: segment images with a HiMTokModel (masks as PNG and COCO RLE, batched, resumable)."""

import sys

from himtok_apps.infer.cli import main

if __name__ == "__main__":
    sys.exit(main())
