"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README lost its Python quick start"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    assert "True 1.414" in capsys.readouterr().out
