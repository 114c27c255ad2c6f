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


def test_every_module_the_readme_calls_after_import_leaky_is_loaded():
    import subprocess
    import sys

    names = set(re.findall(r"\bleaky\.([a-z_]+)\.[a-z_A-Z]+\(", README.read_text()))
    assert "fuse" in names
    code = "import leaky; " + "; ".join(f"leaky.{name}" for name in sorted(names))
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_links_files_that_exist():
    links = re.findall(r"\]\(((?:docs|examples)/[^)#]+)", README.read_text())
    assert any(link.endswith("report.md") for link in links) and any(".png" in x for x in links)
    missing = [link for link in links if not (README.parent / link).is_file()]
    assert not missing, missing


def test_readme_config_examples_exist_and_reports_do_not_share_a_folder():
    text = README.read_text()
    configs = re.findall(r"--config (\S+)", text)
    assert configs and all((README.parent / c).is_file() for c in configs), configs
    outs = [
        re.search(r"--out (\S+)", line)
        for line in text.splitlines()
        if line.lstrip().startswith("leaky report ")
    ]
    assert all(outs) and len({m[1] for m in outs}) == len(outs), outs


def test_the_readme_result_tables_are_the_reports():
    # Made by `python examples/readme_tables.py` from the committed reports, which
    # `leaky report` writes from each sweep's store: never typed by hand.
    import importlib.util

    path = README.parent / "examples" / "readme_tables.py"
    spec = importlib.util.spec_from_file_location("readme_tables", path)
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    found = tables.readme_tables()
    assert len(found) == len(tables.TABLES) == 5
    for report, shown, wanted in found:
        assert shown == wanted, report
        assert len(wanted) > 3, report  # a header, its rule and at least two findings


def test_the_readme_memory_tables_are_what_the_command_prints():
    # Kept bytes are exact counts: the README's block must be the command's output. The
    # gradients' last-bit differences may vary with the CPU: that line is checked by shape.
    from click.testing import CliRunner

    from leaky.app.cli import cli

    text = README.read_text()
    block = re.search(r"```\n\$ leaky (memory [^\n]+)\n(.*?)```", text, flags=re.S)
    assert block, "the README lost its `leaky memory` example"
    models = str(README.parent / "examples" / "models.py")
    arguments = block[1].replace("examples/models.py", models).split()
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    shown, printed = block[2].splitlines(), result.output.splitlines()
    same = [i for i, line in enumerate(printed) if line.startswith("same function:")]
    assert same and shown[: same[0]] == printed[: same[0]]
    assert shown[same[0]].startswith("same function: outputs differ by at most 0, gradients by")
    for model, options, printed_totals, readme_totals in [
        (
            "SmallUNet",
            ["1,64,64", "--batch-size", "16"],
            "137.3 MiB kept for backward as it is, 85.3 MiB with leaky (0.62x",
            "keeps 0.62x\n(137.3 vs 85.3 MiB)",
        ),
        (
            "transformer_encoder",
            ["32,128"],
            "108.1 MiB kept for backward as it is, 108.1 MiB",
            "keeps 108.1 MiB either way",
        ),
    ]:
        command = ["memory", f"{models}:{model}", "--input-shape", *options, "--no-peak"]
        run = CliRunner().invoke(cli, command)
        assert printed_totals in run.output, run.output
        assert readme_totals in text
