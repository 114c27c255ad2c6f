"""The user's own data in the experiments: task specs, [[task]] tables, fingerprints, errors."""

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from leaky.app.cli import cli
from leaky.data import data_fingerprint, load_user_task, parse_task_spec, task_spec_from_table
from leaky.lab.store import Store


def _blobs(n=60, features=6, classes=3, seed=0):
    """Well separated Gaussian blobs: any small network learns them in a few steps."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(0, 4, (classes, features))
    return (centres[y] + rng.normal(0, 0.5, (n, features))).astype(np.float32), y


@pytest.fixture
def npz(tmp_path):
    x, y = _blobs()
    path = tmp_path / "blobs.npz"
    np.savez(path, x=x, y=y)
    return path


def _run(args, store):
    return CliRunner().invoke(cli, ["run", *args, "--quiet", "--store", str(store)])


def _tiny(*more):
    settings = ["steps=20", "seeds=1", "activations=relu", "batch_size=16"]
    return [item for pair in (("--set", s) for s in (*settings, *more)) for item in pair]


def test_specs_name_format_model_and_options():
    assert parse_task_spec("file:d.npz").format == "npz"
    task = parse_task_spec("file:csv:table.txt?label=digit&model=cnn")
    assert (task.format, task.path, task.label, task.model) == ("csv", "table.txt", "digit", "cnn")
    assert task.spec == "file:csv:table.txt?model=cnn&label=digit"
    assert task_spec_from_table({"path": "t.csv", "label": "y"}) == "file:csv:t.csv?label=y"
    for spec, message in [
        ("file:data.txt", "Cannot tell the format of 'data.txt'"),
        ("file:d.npz?model=rnn", "Expected model to be one of mlp, cnn"),
        ("file:d.npz?colour=red", "Expected options key=value"),
        ("file:", "Expected a path"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_task_spec(spec)
    with pytest.raises(ValueError, match="Unknown key 'paht'"):
        task_spec_from_table({"paht": "d.npz"})


def test_accuracy_runs_on_a_file_and_stores_its_fingerprint(npz, tmp_path):
    store = tmp_path / "s.db"
    spec = f"file:{npz}"
    result = _run(["accuracy", "--set", f"tasks={spec}", *_tiny()], store)
    assert result.exit_code == 0, result.output
    assert "1 runs done" in result.output
    with Store(store) as s:
        (run,) = s.runs("accuracy")
    expected = hashlib.sha256(
        f"blobs.npz\0{hashlib.sha256(npz.read_bytes()).hexdigest()}\n".encode()
    ).hexdigest()
    assert run.versions["data"] == {spec: expected} == {spec: data_fingerprint(spec)}
    assert run.results["metric"] == "accuracy" and run.results["value"] > 1 / 3
    again = _run(["accuracy", "--set", f"tasks={spec}", *_tiny()], store)
    assert "0 runs done, 1 already" in again.output
    x, y = _blobs(seed=1)  # the same file name, other data: a new sweep, not a reuse
    np.savez(npz, x=x, y=y)
    changed = _run(["accuracy", "--set", f"tasks={spec}", *_tiny()], store)
    assert "1 runs done, 0 already" in changed.output


def test_report_keeps_a_changed_file_apart_and_needs_no_data(npz, tmp_path):
    from leaky.report.sweeps import load_sweeps, open_store_for_reading

    store = tmp_path / "s.db"
    args = ["accuracy", "--set", f"tasks=file:{npz}", *_tiny("activations=relu,leaky_relu")]
    first = _run(args, store)
    assert first.exit_code == 0 and "Leaky ReLU improves on ReLU for your data" in first.output
    np.savez(npz, x=_blobs(seed=2)[0], y=_blobs()[1])
    assert _run(args, store).exit_code == 0
    npz.unlink()  # the report reads the store only
    with open_store_for_reading(store) as s:
        sweep = load_sweeps(s)["accuracy"]
    assert len(sweep.runs) == 2 and sweep.other_runs == 2


def test_toml_task_tables_feed_accuracy_and_dying(tmp_path):
    x, y = _blobs(features=4)
    csv = tmp_path / "table.csv"
    rows = ["a,b,c,d,digit", *(",".join(map(str, [*r, int(c)])) for r, c in zip(x, y, strict=True))]
    csv.write_text("\n".join(rows) + "\n")
    config = tmp_path / "c.toml"
    config.write_text(f'[[task]]\npath = "{csv}"\nlabel = "digit"\n')
    store = tmp_path / "s.db"
    args = ["--config", str(config), *_tiny()]
    accuracy = _run(["accuracy", *args], store)
    assert accuracy.exit_code == 0, accuracy.output
    dying = _run(["dying", "--config", str(config), *_tiny("lrs=0.1", "bias_shifts=0")], store)
    assert dying.exit_code == 0, dying.output
    with Store(store) as s:
        cells = [r.cell for r in s.runs("accuracy")]
        dying_configs = [r.config["dataset"] for r in s.runs("dying")]
    spec = f"file:csv:{csv}?label=digit"
    assert cells == [{"task": spec, "activation": "relu"}] and dying_configs == [spec]


def test_a_cnn_on_images_from_a_file(tmp_path):
    x, y = _blobs(n=40, features=2 * 8 * 8)
    path = tmp_path / "img.npz"
    np.savez(path, x=x.reshape(-1, 2, 8, 8), y=y)
    result = _run(
        ["accuracy", "--set", f"tasks=file:{path}?model=cnn", *_tiny()], tmp_path / "s.db"
    )
    assert result.exit_code == 0, result.output


def _bad_files(tmp_path):
    x, y = _blobs()
    cases = {}
    cases["missing"] = (f"file:{tmp_path / 'nope.npz'}", "does not exist")
    (tmp_path / "data.txt").write_text("1,2\n")
    cases["format"] = (f"file:{tmp_path / 'data.txt'}", "Cannot tell the format")
    np.savez(tmp_path / "one.npz", x=x, y=np.zeros(len(x), dtype=int))
    cases["one class"] = (f"file:{tmp_path / 'one.npz'}", "at least 2")
    nan = x.copy()
    nan[3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=nan, y=y)
    cases["nan"] = (f"file:{tmp_path / 'nan.npz'}", "NaN or infinite")
    np.savez(tmp_path / "short.npz", x=x, y=y[:-5])
    cases["labels"] = (f"file:{tmp_path / 'short.npz'}", "60 samples but 55 labels")
    np.savez(tmp_path / "deep.npz", x=x.reshape(-1, 1, 1, 2, 3), y=y)
    cases["cnn shape"] = (f"file:{tmp_path / 'deep.npz'}?model=cnn", "model=cnn takes samples")
    np.savez(tmp_path / "test.npz", x=x, y=y, x_test=x[:, :4], y_test=y)
    cases["test shape"] = (f"file:{tmp_path / 'test.npz'}", "'x_test' samples")
    return cases


@pytest.mark.parametrize(
    "case", ["missing", "format", "one class", "nan", "labels", "cnn shape", "test shape"]
)
def test_bad_data_is_one_line_exit_2_and_no_store(case, tmp_path):
    spec, message = _bad_files(tmp_path)[case]
    store = tmp_path / "s.db"
    result = _run(["accuracy", "--set", f"tasks={spec}", *_tiny()], store)
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
    assert not store.exists()


def test_dying_and_slope_refuse_a_cnn_and_other_experiments_refuse_files(npz, tmp_path):
    store = tmp_path / "s.db"
    cnn = _run(["slope", "--set", f"dataset=file:{npz}?model=cnn"], store)
    assert cnn.exit_code == 2 and "Expected model=mlp" in cnn.output
    config = tmp_path / "c.toml"
    config.write_text(f'[[task]]\npath = "{npz}"\n')
    refused = _run(["vanishing", "--config", str(config)], store)
    assert refused.exit_code == 2 and "built-in data only" in refused.output
    assert not store.exists()


def test_a_file_changed_during_a_sweep_is_refused(npz, tmp_path):
    from leaky.lab.findings import resolve_config
    from leaky.lab.plan import plan
    from leaky.lab.runner import run_one

    config = resolve_config("slope", preset="tiny", overrides={"dataset": f"file:{npz}"})
    spec = plan("slope", config)[0]
    np.savez(npz, x=_blobs(seed=3)[0], y=_blobs()[1])
    with pytest.raises(ValueError, match="changed while its sweep ran"):
        run_one(spec)


def test_diagnose_reads_a_csv_through_the_same_loaders(tmp_path):
    x, y = _blobs(features=4)
    csv = tmp_path / "d.csv"
    csv.write_text(
        "a,b,c,d,label\n"
        + "\n".join(",".join(map(str, [*r, int(c)])) for r, c in zip(x, y, strict=True))
    )
    model = tmp_path / "m.py"
    model.write_text(
        "import torch\n"
        "def make():\n"
        "    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),"
        " torch.nn.Linear(8, 3))\n"
    )
    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        cli,
        ["diagnose", f"{model}:make", "--data", str(csv), "--batches", "2", "--json", str(out)],
    )
    assert result.exit_code in (0, 1), result.output  # 1: dead units found, a finding
    assert json.loads(out.read_text())
    nan = tmp_path / "nan.csv"
    nan.write_text("a,label\nnan,0\n1,1\n")
    bad = CliRunner().invoke(cli, ["diagnose", f"{model}:make", "--data", str(nan)])
    assert bad.exit_code == 2 and "NaN" in bad.output


def test_loaded_data_is_checked_and_split(npz):
    data = load_user_task(f"file:{npz}")
    assert data.sizes == (48, 12) and data.num_classes == 3 and data.task == "classification"
