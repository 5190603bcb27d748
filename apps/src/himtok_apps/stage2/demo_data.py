"""Write the demo requests of the shipped demo model: held-out `shapes:` scenes and their questions.

    uv run python -m himtok_apps.stage2.demo_data apps/data/demo-shapes

The scenes come from the evaluation split (never seen in training); each request asks the question of the
sample as the trainer phrased it, so `uv run apps/infer` shows what the demo model learned.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from himtok_apps.conversations import held_out_shapes

DEFAULT_COUNT = 8


def write_demo_requests(folder: Path, count: int = DEFAULT_COUNT, seed: int = 7) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, sample in enumerate(held_out_shapes(count, seed=seed)):
        name = f"scene-{i}.png"
        sample.image.save(folder / name)
        question = sample.turns[0]["value"].replace("<image>", "").strip()
        lines.append({"id": f"scene-{i}", "image": name, "prompt": question})
    path = folder / "requests.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


if __name__ == "__main__":
    print(write_demo_requests(Path(sys.argv[1] if len(sys.argv) > 1 else "apps/data/demo-shapes")))
