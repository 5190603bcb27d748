import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs_and_prints_what_it_says():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert block is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.group(1), str(README), "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["<image>", "Segment <ref>road</ref>."]
    assert lines[-2:] == ["True (17, 3, 999, 0) True", "['unterminated_mask', 'wrong_length']"]
