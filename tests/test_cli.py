"""The `leaky` command: curves, --version, --help, and bad input without tracebacks."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import leaky
from leaky.app.cli import cli
from leaky.lab.runner import SweepResult
from leaky.messages import figure_files, get_messages
from leaky.messages.style import japanese_font
from leaky.system import atomic


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_version_and_help():
    result = _run("--version")
    assert result.exit_code == 0 and leaky.__version__ in result.output
    result = _run("--help")
    assert result.exit_code == 0 and "curves" in result.output


def test_console_script_runs_in_a_real_process(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "leaky", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("leaky, version")


def test_curves_writes_png_and_svg_and_prints_the_table(tmp_path):
    result = _run("curves", "--out", str(tmp_path / "c"), "--slopes", "0.01,0.2")
    assert result.exit_code == 0, result.output
    png, svg = tmp_path / "c" / "curves.png", tmp_path / "c" / "curves.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in svg.read_text()
    lines = result.output.splitlines()
    assert lines[0].split()[:5] == ["activation", "f(-2)", "f(2)", "f'(-2)", "f'(2)"]
    relu = next(line for line in lines if line.startswith("ReLU "))
    assert relu.split()[1:5] == ["0", "2", "0", "1"] and "yes" in relu
    leaky_row = next(line for line in lines if line.startswith("Leaky ReLU (a=0.2)"))
    assert leaky_row.split()[3:7] == ["-0.4", "2", "0.2", "1"] and "no" in leaky_row
    assert not list((tmp_path / "c").glob(".*")), "temporary files left behind"
    assert png.stat().st_mode & 0o044 == 0o044, "result files must be readable by others"


def test_curves_in_japanese(tmp_path):
    result = _run("curves", "--out", str(tmp_path), "--lang", "ja")
    assert result.exit_code == 0, result.output
    assert "活性化関数" in result.output and "デッドニューロン" in result.output
    svg = (tmp_path / "curves.svg").read_text()
    if japanese_font() is not None:
        assert "勾配" in svg
    else:
        assert "勾配" not in svg


def test_curves_in_japanese_without_a_japanese_font(tmp_path, monkeypatch):
    monkeypatch.setattr(figure_files, "japanese_font", lambda: None)
    result = CliRunner().invoke(cli, ["curves", "--out", str(tmp_path), "--lang", "ja"])
    assert result.exit_code == 0, result.output
    assert get_messages("ja")("curves.no_cjk_font") in result.output
    svg = (tmp_path / "curves.svg").read_text()
    assert "Gradient f'(x)" in svg and "勾配" not in svg


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["curves", "--slopes", "abc"], 2, "comma-separated numbers"),
        (["curves", "--slopes", "-0.1"], 2, "Expected every slope to be >= 0"),
        (["curves", "--slopes", "nan"], 2, "finite"),
        (["curves", "--slopes", ","], 2, "at least one"),
        (["curves", "--lang", "fr"], 2, "'fr' is not one of"),
        (["curves", "--bogus"], 2, "No such option"),
        (["nonsense"], 2, "No such command"),
    ],
)
def test_bad_arguments_fail_cleanly(args, code, message, tmp_path):
    result = _run(
        *args,
        *(["--out", str(tmp_path / "x")] if args[0] == "curves" and "--bogus" not in args else []),
    )
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_output_path_that_is_a_file_fails_cleanly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    result = _run("curves", "--out", str(blocker))
    assert result.exit_code != 0 and "is a file" in result.output
    assert blocker.read_text() == "keep me"


def _store(path):
    from leaky.lab.store import RunRecord, Store

    with Store(path) as store:
        store.save(RunRecord("r", "born-dead", {}, 0, {}, "finished", 0.1))
    return path


@pytest.mark.parametrize(
    "store_content",
    [b"hello, this is not sqlite at all" * 10, "abc"],
    ids=["not-sqlite", "schema-abc"],
)
def test_the_same_bad_store_is_exit_2_from_every_command(tmp_path, store_content):
    store = tmp_path / "s.db"
    if isinstance(store_content, bytes):
        store.write_bytes(store_content)
    else:
        import sqlite3

        _store(store)
        with sqlite3.connect(store) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (store_content,))
    before = store.read_bytes()
    outputs = []
    for args in (
        ["run", "born-dead", "--quick", "--store", str(store), "--quiet"],
        ["report", "--store", str(store), "--out", str(tmp_path / "out")],
    ):
        result = _run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output and len(result.output.splitlines()) == 1
        outputs.append(result.output)
    assert outputs[0] == outputs[1] and str(store) in outputs[0]
    assert store.read_bytes() == before and not (tmp_path / "out").exists()


def test_a_bad_output_folder_is_exit_2_from_every_command(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("keep me")
    store = _store(tmp_path / "s.db")
    for args in (
        ["curves", "--out", str(blocker)],
        ["report", "--store", str(store), "--out", str(blocker)],
        ["report", "--store", str(store), "--out", str(blocker / "below")],
        ["demo", "--out", str(blocker), "--quiet"],
        ["bench", "kernels", "--quick", "--json", str(blocker / "bench.json")],
        [
            "diagnose",
            "examples/models.py:make_model",
            "--input-shape",
            "4",
            "--json",
            str(blocker / "d.json"),
        ],
    ):
        result = _run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert str(blocker) in result.output and "Traceback" not in result.output
    assert blocker.read_text() == "keep me"


def test_ctrl_c_is_exit_130(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("leaky.report.write_curves", interrupted)
    result = _run("curves", "--out", str(tmp_path))
    assert result.exit_code == 130 and "Traceback" not in result.output


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "leaky", "curves", "--slopes", "-1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Error: Expected every slope" in result.stderr and "Traceback" not in result.stderr


def test_failed_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "result.svg"
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        Path(tmp).write_text("<svg half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_failed_figure_save_keeps_the_previous_figure(tmp_path, monkeypatch):
    (tmp_path / "curves.png").write_bytes(b"previous")

    def broken_savefig(self, path, **kwargs):
        Path(path).write_bytes(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", broken_savefig)
    result = _run("curves", "--out", str(tmp_path))
    assert result.exit_code == 2 and "No space left" in result.output
    assert (tmp_path / "curves.png").read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


def test_list_datasets_and_activations():
    result = _run("list", "datasets")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()[1:]] == [
        "digits",
        "mnist1d",
        "pydoc-text",
        "spirals",
        "fn1d",
        "fsdd",  # read from disk: its state says whether it is here
        "mnist",
    ]
    fsdd, mnist = result.output.splitlines()[-2:]
    assert "present (" in fsdd or "not here: leaky data fetch fsdd" in fsdd
    assert "test set only: split 8,000 / 2,000" in mnist or "leaky data fetch mnist" in mnist
    result = _run("list", "activations")
    assert (
        result.exit_code == 0
        and "leaky_relu" in result.output
        and "negative_slope=0.01" in result.output
    )
    assert _run("list", "models").exit_code == 2


def test_list_settings_shows_type_default_and_quick_value():
    result = _run("list", "settings", "vanishing")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["setting", "type", "default", "--quick"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    from leaky.lab.experiments.vanishing import VanishingConfig

    assert list(rows) == [f.name for f in dataclasses.fields(VanishingConfig)]
    assert rows["depths"][1:6] == ["list", "of", "int", "5,10,20,40", "5,20"]
    assert rows["steps"][1:4] == ["int", "300", "100"] and "SGD steps" in " ".join(rows["steps"])
    assert rows["lr"][1:4] == ["float", "0.05", "0.05"]
    for args in (["list", "settings"], ["list", "settings", "nope"], ["list", "datasets", "x"]):
        result = _run(*args)
        assert result.exit_code == 2 and "Traceback" not in result.output, args


EXAMPLE_TOML = Path(__file__).resolve().parents[1] / "examples" / "vanishing.toml"


def test_the_example_config_file_is_accepted(tmp_path, monkeypatch):
    import tomllib

    seen = {}

    def execute(sweep, store, **kwargs):
        seen["config"] = sweep.config
        return SweepResult(total=0, ran=0, skipped=0, diverged=0)

    monkeypatch.setattr("leaky.lab.findings.execute", execute)
    monkeypatch.setattr("leaky.lab.findings.summarize", lambda *args, **kwargs: [])
    store = tmp_path / "s.db"
    result = _run(
        "run", "vanishing", "--config", str(EXAMPLE_TOML), "--quick", "--store", str(store)
    )
    assert result.exit_code == 0, result.output
    wanted = tomllib.loads(EXAMPLE_TOML.read_text())
    from leaky.lab.config import config_to_dict

    assert {k: config_to_dict(seen["config"])[k] for k in wanted} == wanted
    assert set(wanted) < {
        line.split()[0] for line in _run("list", "settings", "vanishing").output.splitlines()
    }


def test_an_unexpected_error_inside_leaky_is_a_bug_exit_1_not_a_user_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr("leaky.report.write_curves", broken)
    result = _run("curves", "--out", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert "a bug in leaky" in result.output and "LEAKY_DEBUG=1" in result.output
    assert "TypeError: unsupported operand" in result.output and "Traceback" not in result.output
    monkeypatch.setenv("LEAKY_DEBUG", "1")
    assert isinstance(_run("curves", "--out", str(tmp_path)).exception, TypeError)


def test_errors_the_api_raises_in_python_terms_are_said_with_flags(tmp_path):
    from leaky.lab.runner import check_parallelism
    from leaky.system.errors import ParameterError

    with pytest.raises(ParameterError, match="Expected threads to be a whole number") as error:
        check_parallelism(1, 0)
    assert "--threads" not in str(error.value)
    result = _run("demo", "--threads", "0", "--out", str(tmp_path / "d"))
    assert result.exit_code == 2 and "Expected --threads to be a whole number" in result.output
    result = _run("diagnose", "m.py:f", "--input-shape", "4", "--json", str(tmp_path / "r.txt"))
    assert result.exit_code == 2 and "Expected --json to be a .json file" in result.output
    assert not (tmp_path / "d").exists()


def test_braces_and_percent_signs_in_a_users_path_are_a_user_error(tmp_path):
    # The error template fills only the parameter's own field: a user's "{out}" or "%d"
    # is text, not a field (it ended as "leaky failed unexpectedly (KeyError: 'out')").
    result = _run("diagnose", "m.py:f", "--input-shape", "4", "--json", str(tmp_path / "{out}.txt"))
    assert result.exit_code == 2 and "{out}.txt" in result.output, result.output
    blocker = tmp_path / "a%d{x}"
    blocker.write_text("a file")
    result = _run("curves", "--out", str(blocker))
    assert result.exit_code == 2 and "a%d{x}" in result.output and "--out" in result.output
