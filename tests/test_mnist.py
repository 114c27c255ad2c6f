"""MNIST from disk: the checked test-set copy split 8,000 / 2,000, the full set, and its fetch.

The real files are read from ``$LEAKY_DATA_DIR/mnist-t10k`` (the checked copy in
``../shared/data``); those tests skip with a reason without it. The fetch runs against a
loopback server serving the real test files and small IDX files written here.
"""

import gzip
import hashlib
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from leaky.app.cli import cli
from leaky.data import load_named_dataset
from leaky.data.fetch import FetchError, fetch_mnist
from leaky.data.mnist import (
    MNIST_MD5,
    T10K_SPLIT,
    MnistNotFoundError,
    find_mnist,
    load_mnist,
    mnist_status,
)

from _helpers import LoopbackServer

SHARED = Path(os.environ.get("LEAKY_DATA_DIR", "")) / "mnist-t10k"
needs_copy = pytest.mark.skipif(
    not (SHARED / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="the checked MNIST test-set copy ($LEAKY_DATA_DIR/mnist-t10k) is not here",
)
IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def idx_bytes(array: np.ndarray) -> bytes:
    """An array of uint8 as a gzipped IDX file (magic 0x0800 | dims, big-endian sizes)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def small_mnist(train: int = 30, test: int = 20, seed: int = 0) -> dict[str, bytes]:
    """Four IDX files shaped like MNIST's, with every class in both splits."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte.gz": idx_bytes(rng.integers(0, 256, (train, 28, 28))),
        "train-labels-idx1-ubyte.gz": idx_bytes(np.arange(train) % 10),
        IMAGES: idx_bytes(rng.integers(0, 256, (test, 28, 28))),
        LABELS: idx_bytes(np.arange(test) % 10),
    }


def md5s(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.md5(data).hexdigest() for name, data in files.items()}


def write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def server():
    running = LoopbackServer()
    yield running
    running.close()


# --- the checked copy of the 10,000 test images ------------------------------------------


@needs_copy
def test_the_test_set_copy_is_split_stratified_and_seeded():
    data = load_mnist(SHARED)
    assert data.sizes == T10K_SPLIT == (8000, 2000)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert "stratified 8,000 / 2,000" in data.description and "not comparable" in data.description
    train = np.bincount(data.y_train.numpy(), minlength=10) / 8000
    test = np.bincount(data.y_test.numpy(), minlength=10) / 2000
    np.testing.assert_allclose(train, test, atol=1 / 2000)  # each class's share in both parts
    # Standardised with the training split's statistics only.
    assert abs(float(data.x_train.mean())) < 1e-4 and abs(float(data.x_train.std()) - 1) < 1e-3
    again = load_mnist(SHARED)
    assert bool((again.x_test == data.x_test).all()) and bool((again.y_train == data.y_train).all())
    # Every one of the 10,000 images is in exactly one part: the labels add up per class.
    raw = np.frombuffer(gzip.decompress((SHARED / LABELS).read_bytes())[8:], np.uint8)
    parts = np.bincount(data.y_train.numpy(), minlength=10) + np.bincount(data.y_test.numpy())
    assert (parts == np.bincount(raw, minlength=10)).all() and len(raw) == 10000


@needs_copy
def test_the_data_dir_env_finds_the_copy_and_the_named_dataset_reads_it(monkeypatch, tmp_path):
    monkeypatch.setenv("LEAKY_DATA_DIR", str(SHARED.parent))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert find_mnist() == SHARED
    assert mnist_status().state == "test set"
    assert load_named_dataset("mnist").sizes == (8000, 2000)


@needs_copy
def test_a_damaged_file_is_named_with_the_fix(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in (IMAGES, LABELS):
        shutil.copy(SHARED / name, folder / name)
    data = bytearray((folder / LABELS).read_bytes())
    data[-1] ^= 1
    (folder / LABELS).write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{LABELS}: its MD5 .*leaky data fetch mnist"):
        load_mnist(folder)
    assert mnist_status(folder).state == "damaged"


def test_missing_data_lists_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("LEAKY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(MnistNotFoundError, match="mnist-t10k.*leaky data fetch mnist"):
        find_mnist()
    assert mnist_status().state == "absent"


def test_the_full_set_uses_its_own_split(tmp_path):
    files = small_mnist(train=30, test=20)
    folder = write(tmp_path / "mnist", files)
    data = load_mnist(folder, checksums=md5s(files))
    assert data.sizes == (30, 20) and "official split" in data.description
    with pytest.raises(ValueError, match="its MD5"):
        load_mnist(folder)  # these are not MNIST's files


# --- leaky data fetch mnist ----------------------------------------------------------------


def _serve(server: LoopbackServer, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        server.serve(f"/mnist/{name}", data)
    return server.serve("/mnist/", b"")


def test_fetch_checks_every_file_and_moves_the_set_into_place(server, tmp_path):
    files = small_mnist()
    target = tmp_path / "data" / "mnist"
    result = fetch_mnist(target, url=_serve(server, files), checksums=md5s(files), progress=False)
    assert result.installed == 4 and result.path == target
    assert load_mnist(target, checksums=md5s(files)).sizes == (30, 20)
    assert "CC BY-SA 3.0" in (target / "README.txt").read_text()
    assert sorted(p.name for p in target.parent.iterdir()) == ["mnist"]
    again = fetch_mnist(target, url=_serve(server, files), checksums=md5s(files), progress=False)
    assert again.already_present and server.requests == 4


@needs_copy
def test_fetch_refuses_a_file_that_is_not_mnist_and_installs_nothing(server, tmp_path):
    # The real test files pass MNIST's canonical sums; a made-up training file does not.
    files = {name: (SHARED / name).read_bytes() for name in (IMAGES, LABELS)}
    files.update({k: v for k, v in small_mnist().items() if k.startswith("train")})
    target = tmp_path / "data" / "mnist"
    with pytest.raises(FetchError, match="train-images-idx3-ubyte.gz: its MD5"):
        fetch_mnist(target, url=_serve(server, files), progress=False)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_fetch_truncated_or_missing_files_install_nothing(server, tmp_path):
    files = small_mnist()
    url = _serve(server, {k: v for k, v in files.items() if k != LABELS})
    target = tmp_path / "mnist"
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_mnist(target, url=url, checksums=md5s(files), progress=False)
    server.serve(f"/mnist/{LABELS}", files[LABELS][:10], declared=len(files[LABELS]))
    with pytest.raises(FetchError, match="ended early"):
        fetch_mnist(target, url=url, checksums=md5s(files), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_fetch_never_overwrites_a_folder_that_is_not_a_complete_mnist(tmp_path):
    target = tmp_path / "mnist"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a complete MNIST; remove it or choose another"):
        fetch_mnist(target, url="http://127.0.0.1:9/", progress=False)
    assert (target / "notes.txt").read_text() == "mine"


def test_cli_fetch_mnist_errors_are_one_line(server, tmp_path):
    url = _serve(server, small_mnist())  # not MNIST's files: the canonical sums refuse them
    target = tmp_path / "mnist"
    result = CliRunner().invoke(
        cli, ["data", "fetch", "mnist", "--dir", str(target), "--url", url, "--quiet"]
    )
    assert result.exit_code == 1 and "its MD5" in result.output, result.output
    assert "Traceback" not in result.output and result.output.strip().count("\n") == 0
    assert not target.exists()
    bad = CliRunner().invoke(cli, ["data", "fetch", "mnist", "--url", "ftp://x/"])
    assert bad.exit_code == 2 and "http:// or https://" in bad.output


def test_cli_data_list_names_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("LEAKY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = CliRunner().invoke(cli, ["data", "list"])
    assert result.exit_code == 0 and "mnist" in result.output
    assert "leaky data fetch mnist" in result.output and "CC BY-SA 3.0" in result.output


def test_the_canonical_sums_are_mnists():
    # The two test files' sums as the checked copy's README gives them (torchvision's list).
    assert MNIST_MD5[IMAGES] == "9fb629c4189551a2d022fa330f9573f3"
    assert MNIST_MD5[LABELS] == "ec29112dd5afa0611ce80d1b7f02629c"


# --- the mnist task in the article's experiments -------------------------------------------


@needs_copy
@pytest.mark.parametrize(
    ("experiment", "overrides"),
    [
        ("accuracy", {"tasks": "mnist-mlp,mnist-cnn", "activations": "relu,leaky_relu"}),
        ("dying", {"dataset": "mnist"}),
        ("slope", {"dataset": "mnist"}),
    ],
)
def test_the_mnist_task_runs_in_the_articles_experiments(experiment, overrides, tmp_path):
    from leaky.lab.findings import resolve_config, run_experiment
    from leaky.lab.store import Store

    config = resolve_config(experiment, preset="tiny", overrides={**overrides, "seeds": 1})
    with Store(tmp_path / "s.db") as store:
        run_experiment(experiment, config, store, progress=False)
        runs = store.runs()
    assert runs and all(run.status == "finished" for run in runs)
    accuracy = [r.results.get("test_accuracy", r.results.get("accuracy")) for r in runs]
    assert all(0.0 <= a <= 1.0 for a in accuracy if a is not None)


def test_an_experiment_on_mnist_without_it_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("LEAKY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for args in (["dying", "--set", "dataset=mnist"], ["accuracy", "--set", "tasks=mnist-cnn"]):
        result = CliRunner().invoke(cli, ["run", *args, "--store", str(tmp_path / "s.db")])
        assert result.exit_code == 2 and "leaky data fetch mnist" in result.output, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "s.db").exists()
