"""leaky.data: built-in offline tasks and every user-file loader, malformed cases included."""

import gzip
import random
import struct

import numpy as np
import pytest
import torch

from leaky.data import (
    dataset_from_arrays,
    list_datasets,
    load_cifar10,
    load_csv,
    load_dataset,
    load_idx,
    load_npz,
)


@pytest.mark.parametrize(
    ("name", "sizes", "shape", "classes", "task"),
    [
        ("digits", (1347, 450), (1, 8, 8), 10, "classification"),
        ("mnist1d", (4000, 1000), (1, 40), 10, "classification"),
        ("pydoc-text", None, (8,), None, "language"),
        ("spirals", (1600, 400), (2,), 2, "classification"),
        ("fn1d", (1000, 401), (1,), None, "regression"),
    ],
)
def test_builtin_tasks(name, sizes, shape, classes, task):
    d = load_dataset(name)
    assert d.input_shape == shape and d.task == task
    if sizes is not None:
        assert d.sizes == sizes
    if classes is not None:
        assert d.num_classes == classes
        assert set(d.y_train.unique().tolist()) == set(range(classes))
    assert d.description and d.source
    assert torch.isfinite(d.x_train.float()).all()


def test_builtins_are_deterministic_and_leave_global_rngs_alone():
    np_state, py_state = np.random.get_state()[1][:5].copy(), random.getstate()
    a, b = load_dataset("mnist1d"), load_dataset("mnist1d")
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert np.array_equal(np.random.get_state()[1][:5], np_state) and random.getstate() == py_state
    assert torch.equal(load_dataset("digits").x_test, load_dataset("digits").x_test)


def test_digits_split_is_stratified():
    d = load_dataset("digits")
    train = torch.bincount(d.y_train) / len(d.y_train)
    test = torch.bincount(d.y_test) / len(d.y_test)
    assert (train - test).abs().max() < 0.01


def test_text_windows_predict_the_next_character():
    d = load_dataset("pydoc-text")
    vocabulary = d.vocabulary
    context = "".join(vocabulary[i] for i in d.x_train[1000].tolist())
    following = "".join(vocabulary[i] for i in d.x_train[1001].tolist())
    assert following[:-1] == context[1:] and following[-1] == vocabulary[int(d.y_train[1000])]
    assert len(d.x_train) + len(d.x_test) > 400_000


def test_unknown_dataset_lists_names():
    with pytest.raises(ValueError, match="digits, mnist1d, pydoc-text, spirals, fn1d"):
        load_dataset("imagenet")
    assert [i.name for i in list_datasets()] == [
        "digits",
        "mnist1d",
        "pydoc-text",
        "spirals",
        "fn1d",
    ]


# --- npz ------------------------------------------------------------------------------------
def test_npz_round_trip(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(
        path, x_train=np.ones((4, 3)), y_train=[0, 1, 2, 1], x_test=np.zeros((2, 3)), y_test=[1, 0]
    )
    arrays = load_npz(path)
    assert arrays["x"].shape == (4, 3) and arrays["y_test"].tolist() == [1, 0]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.array([{"a": 1}], dtype=object), "y": np.array([0])}, "without unpickling"),
        ({"x": np.ones((3, 2))}, "'y' missing"),
        ({"x": np.ones((3, 2)), "y": np.array([0, 1])}, "3 samples but 2 labels"),
        ({"x": np.array([[1.0, np.nan]]), "y": np.array([0])}, "NaN or infinite"),
        ({"x": np.ones((2, 2)), "y": np.array([0.5, 1])}, "integers >= 0"),
        (
            {
                "x": np.ones((2, 2)),
                "y": np.array([0, 1]),
                "x_test": np.ones((1, 3)),
                "y_test": np.array([0]),
            },
            "samples have shape",
        ),
        ({"x": np.ones((2, 2)), "y": np.array([0, 1]), "x_test": np.ones((1, 2))}, "together"),
    ],
)
def test_npz_malformed(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as error:
        load_npz(path)
    assert "bad.npz" in str(error.value)


def test_npz_that_is_not_an_npz(tmp_path):
    path = tmp_path / "fake.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="fake.npz"):
        load_npz(path)


# --- csv ------------------------------------------------------------------------------------
def test_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("f1,label,f2\n0.5,1,2\n1.5,0,3\n")
    x, y = load_csv(path, "label")
    assert x.tolist() == [[0.5, 2.0], [1.5, 3.0]] and y.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n", "no column named 'label'; the columns are a, b"),
        ("a,label\n1,x\n", "line 2, column 'label': 'x' is not a number"),
        ("a,label\n1,0\n2\n", "line 3: 1 values for 2 columns"),
        ("a,label\nnan,0\n", "NaN or infinite"),
        ("a,label\n", "at least one data row"),
        ("a,label\n1,-1\n", "integers >= 0"),
    ],
)
def test_csv_malformed(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_csv(path, "label")


# --- MNIST IDX ------------------------------------------------------------------------------
def _idx(values: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, values.ndim]) + b"".join(
        struct.pack(">I", d) for d in values.shape
    )
    return header + values.astype(">u1" if type_code == 0x08 else ">f4").tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_idx_plain_and_gzip(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([3, 7], dtype=np.uint8)
    wrap = gzip.compress if compress else (lambda b: b)
    (tmp_path / "img").write_bytes(wrap(_idx(images)))
    (tmp_path / "lab").write_bytes(wrap(_idx(labels)))
    x, y = load_idx(tmp_path / "img", tmp_path / "lab")
    assert x.shape == (2, 1, 3, 4) and x.max() == pytest.approx(23 / 255)
    assert y.tolist() == [3, 7]


@pytest.mark.parametrize(
    ("image_bytes", "label_bytes", "message"),
    [
        (b"\x12\x34\x08\x03" + b"\x00" * 20, None, "magic number 12340803"),
        (_idx(np.zeros((2, 3, 4), np.uint8))[:-5], None, "truncated"),
        (None, _idx(np.zeros(3, np.uint8)), "2 images but .* 3 labels"),
        (b"\x00\x00\x08\x03\x00", None, "truncated IDX header"),
        (gzip.compress(_idx(np.zeros((2, 3, 4), np.uint8)))[:-8], None, "gzip stream is damaged"),
    ],
)
def test_idx_malformed(tmp_path, image_bytes, label_bytes, message):
    (tmp_path / "img").write_bytes(image_bytes or _idx(np.zeros((2, 3, 4), np.uint8)))
    (tmp_path / "lab").write_bytes(label_bytes or _idx(np.zeros(2, np.uint8)))
    with pytest.raises(ValueError, match=message):
        load_idx(tmp_path / "img", tmp_path / "lab")


# --- CIFAR-10 -------------------------------------------------------------------------------
def _cifar_records(labels):
    rng = np.random.default_rng(0)
    return b"".join(
        bytes([label]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes() for label in labels
    )


def test_cifar10(tmp_path):
    (tmp_path / "b1.bin").write_bytes(_cifar_records([0, 9]))
    (tmp_path / "b2.bin").write_bytes(_cifar_records([5]))
    x, y = load_cifar10([tmp_path / "b1.bin", tmp_path / "b2.bin"])
    assert x.shape == (3, 3, 32, 32) and y.tolist() == [0, 9, 5] and 0 <= x.min() <= x.max() <= 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_cifar_records([1])[:-1], "not a whole number"),
        (_cifar_records([12]), "label 12"),
        (b"", "not a whole"),
    ],
)
def test_cifar10_malformed(tmp_path, raw, message):
    (tmp_path / "b.bin").write_bytes(raw)
    with pytest.raises(ValueError, match=message):
        load_cifar10([tmp_path / "b.bin"])


def test_missing_files_are_named(tmp_path):
    for call in (
        lambda: load_npz(tmp_path / "no.npz"),
        lambda: load_csv(tmp_path / "no.csv", "y"),
        lambda: load_idx(tmp_path / "no", tmp_path / "no2"),
        lambda: load_cifar10([tmp_path / "no.bin"]),
    ):
        with pytest.raises(ValueError, match="does not exist"):
            call()


def test_dataset_from_arrays_splits_with_a_seed():
    x, y = np.arange(40, dtype=np.float32).reshape(20, 2), np.arange(20) % 3
    a = dataset_from_arrays("mine", x, y, seed=1)
    b = dataset_from_arrays("mine", x, y, seed=1)
    assert a.sizes == (16, 4) and a.num_classes == 3 and torch.equal(a.x_test, b.x_test)
    with pytest.raises(ValueError, match="too few"):
        dataset_from_arrays("tiny", x[:1], y[:1])


def test_fn1d_targets_are_one_per_sample_and_learnable():
    from leaky.experiments.training import evaluate, train
    from leaky.models import mlp

    d = load_dataset("fn1d")
    assert d.y_train.shape == (1000,) and d.y_test.shape == (401,)
    model = mlp(
        1, 1, depth=2, width=32, activation="leaky_relu", generator=torch.Generator().manual_seed(0)
    )
    train(
        model,
        d,
        steps=400,
        batch_size=64,
        lr=1e-2,
        optimizer="adam",
        generator=torch.Generator().manual_seed(0),
    )
    assert evaluate(model, d)["mse"] < 0.5 * d.y_test.var().item()


def test_csv_with_bom_blank_lines_and_repeated_names(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefflabel,a\n0,1.5\n\n1,2.5\n".encode())
    x, y = load_csv(path, "label")
    assert x.tolist() == [[1.5], [2.5]] and y.tolist() == [0, 1]
    path.write_text("a,label,label\n1,0,0\n")
    with pytest.raises(ValueError, match="names label more than once"):
        load_csv(path, "label")


def test_npz_features_need_a_sample_axis(tmp_path):
    path = tmp_path / "flat.npz"
    np.savez(path, x=np.ones(5), y=np.zeros(5, int))
    with pytest.raises(ValueError, match=r"shape \(samples, 1\)"):
        load_npz(path)
    with pytest.raises(ValueError, match="both x_test and y_test"):
        dataset_from_arrays("m", np.ones((4, 2)), np.zeros(4, int), x_test=np.ones((2, 2)))
