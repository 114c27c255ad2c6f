"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README lost its Python quick start"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "True 1.414" in out
    assert "{'1': [0, 1, 2, 3]}" in out
    assert "1: torch.nn.ReLU() -> leaky.nn.LeakyReLU(negative_slope=0.01) (re-initialised 0)" in out
    assert (tmp_path / "out" / "monitor.png").exists()


def test_readme_links_files_that_exist():
    links = re.findall(r"\]\(((?:docs|examples)/[^)#]+)", README.read_text())
    assert any(link.endswith("report.md") for link in links) and any(".png" in x for x in links)
    missing = [link for link in links if not (README.parent / link).is_file()]
    assert not missing, missing
