"""leaky.data: built-in offline tasks and every user-file loader, malformed cases included."""

import csv
import gzip
import io
import random
import struct
import tracemalloc

import numpy as np
import pytest
import torch

from leaky.data import (
    dataset_from_arrays,
    list_datasets,
    load_cifar10,
    load_csv,
    load_idx,
    load_named_dataset,
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
    d = load_named_dataset(name)
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
    a, b = load_named_dataset("mnist1d"), load_named_dataset("mnist1d")
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert np.array_equal(np.random.get_state()[1][:5], np_state) and random.getstate() == py_state
    assert torch.equal(load_named_dataset("digits").x_test, load_named_dataset("digits").x_test)


def test_digits_split_is_stratified():
    d = load_named_dataset("digits")
    train = torch.bincount(d.y_train) / len(d.y_train)
    test = torch.bincount(d.y_test) / len(d.y_test)
    assert (train - test).abs().max() < 0.01


def test_text_windows_predict_the_next_character():
    d = load_named_dataset("pydoc-text")
    vocabulary = d.vocabulary
    context = "".join(vocabulary[i] for i in d.x_train[1000].tolist())
    following = "".join(vocabulary[i] for i in d.x_train[1001].tolist())
    assert following[:-1] == context[1:] and following[-1] == vocabulary[int(d.y_train[1000])]
    assert len(d.x_train) + len(d.x_test) > 400_000


def test_unknown_dataset_lists_names():
    with pytest.raises(ValueError, match="digits, mnist1d, pydoc-text, spirals, fn1d"):
        load_named_dataset("imagenet")
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
        ({"x": np.array([{"a": 1}], dtype=object), "y": np.array([0])}, "without pickles"),
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
    from leaky.lab.experiments.training import evaluate, train
    from leaky.lab.models import mlp

    d = load_named_dataset("fn1d")
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


# --- sizes from the headers, and files that are not what they claim ---------------------------
def _npz_member(name: str, header: dict, data: bytes = b"") -> tuple[str, bytes]:
    """An .npy member written by hand, so its header may promise what the data lacks."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return f"{name}.npy", buffer.getvalue() + data


def _write_zip(path, members, compression=None):
    import zipfile

    with zipfile.ZipFile(path, "w", compression or zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members:
            archive.writestr(name, payload)


def test_npz_declaring_a_huge_array_is_refused_from_its_header(tmp_path):
    path = tmp_path / "huge.npz"
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    _write_zip(path, [_npz_member("x", header), _npz_member("y", {**header, "shape": (3,)})])
    with pytest.raises(ValueError) as error:
        load_npz(path)
    message = str(error.value)
    assert "huge.npz" in message and "8,000,000,000,000 bytes" in message
    assert "limit" in message and "LEAKY_MAX_DATA_BYTES" in message and "max_bytes" in message
    assert "\n" not in message


def test_npz_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((2**20, 8)), y=np.zeros(2**20, np.int64))  # 72 MiB
    assert path.stat().st_size < 200_000
    with pytest.raises(ValueError, match=r"bomb.npz.*limit of 1\.0 MiB"):
        load_npz(path, max_bytes=2**20)
    arrays = load_npz(path, max_bytes=100 * 2**20)  # raised: read
    assert arrays["x"].shape == (2**20, 8)


def test_npz_limit_comes_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones((100, 10)), y=np.zeros(100, np.int64))  # 8,800 bytes
    monkeypatch.setenv("LEAKY_MAX_DATA_BYTES", "4K")
    with pytest.raises(ValueError, match="limit of 4.0 KiB"):
        load_npz(path)
    monkeypatch.setenv("LEAKY_MAX_DATA_BYTES", "1M")
    assert load_npz(path)["x"].shape == (100, 10)
    monkeypatch.setenv("LEAKY_MAX_DATA_BYTES", "lots")
    with pytest.raises(ValueError, match="LEAKY_MAX_DATA_BYTES to be a number of bytes"):
        load_npz(path)


def test_npz_member_with_more_data_than_its_header_is_not_inflated(tmp_path):
    import tracemalloc

    path = tmp_path / "padded.npz"
    header = {"descr": "<f8", "fortran_order": False, "shape": (3, 1)}
    _write_zip(
        path,
        [
            _npz_member("x", header, bytes(24) + bytes(200 * 2**20)),  # 200 MiB of zeros
            _npz_member("y", {**header, "descr": "<i8", "shape": (3,)}, bytes(24)),
        ],
    )
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="padded.npz.*'x'.*more bytes than its header"):
            load_npz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"a,b,label\n1,2,0\n", "is a text file, not an .npz archive"),
        (bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)), "not an .npz"),
        (b"\x93NUMPY\x01\x00" + bytes(100), "a single .npy array, not an .npz archive"),
    ],
)
def test_npz_files_that_are_not_archives_get_one_clear_line(tmp_path, content, message):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        load_npz(path)
    text = str(error.value)
    assert "junk.npz" in text and "pickled" not in text and "\n" not in text


def test_npz_truncated_archive_and_damaged_member(tmp_path):
    path = tmp_path / "cut.npz"
    np.savez(path, x=np.arange(2000.0).reshape(1000, 2), y=np.zeros(1000, np.int64))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"cut.npz.*truncated or damaged") as error:
        load_npz(path)
    assert "pickled" not in str(error.value)
    # A member whose header promises more than the member holds.
    header = {"descr": "<f8", "fortran_order": False, "shape": (1000, 2)}
    _write_zip(
        path, [_npz_member("x", header, bytes(100)), _npz_member("y", {**header, "shape": (2,)})]
    )
    with pytest.raises(ValueError, match=r"cut.npz.*'x'.*16,000 bytes.*truncated"):
        load_npz(path)
    # Flipped bytes inside a stored (uncompressed) member: the CRC catches them.
    np.savez(path, x=np.ones((4, 2)), y=np.zeros(4, np.int64))
    raw = bytearray(path.read_bytes())
    at = raw.index(b"\x00\x00\xf0?")  # inside the data of 1.0 float64 values
    raw[at + 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"cut.npz.*damaged"):
        load_npz(path)


def test_npz_object_array_is_named_as_such(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(ValueError, match=r"objects.npz: array 'x' holds Python objects"):
        load_npz(path)


def test_zip_that_is_no_npz_is_named(tmp_path):
    path = tmp_path / "model.npz"
    _write_zip(path, [("archive/data.pkl", b"\x80\x02}q\x00.")])
    with pytest.raises(ValueError, match="model.npz.*no .npy arrays.*'archive/data.pkl'"):
        load_npz(path)


def test_idx_declaring_more_than_the_limit_is_refused(tmp_path):
    header = bytes([0, 0, 0x0D, 3]) + struct.pack(">III", 60000, 1000, 1000)  # 240 GB of f4
    (tmp_path / "img").write_bytes(header + bytes(16))
    (tmp_path / "lab").write_bytes(_idx(np.zeros(2, np.uint8)))
    with pytest.raises(ValueError, match=r"img: .*240,000,000,000 bytes.*limit") as error:
        load_idx(tmp_path / "img", tmp_path / "lab")
    assert "LEAKY_MAX_DATA_BYTES" in str(error.value)


def test_gzipped_idx_bomb_is_never_inflated_beyond_its_header(tmp_path):
    import tracemalloc

    images = np.zeros((2, 3, 4), np.uint8)
    # The header says 24 bytes of pixels; the stream inflates to 300 MiB.
    bomb = gzip.compress(_idx(images) + bytes(300 * 2**20), compresslevel=9)
    assert len(bomb) < 400_000
    (tmp_path / "img.gz").write_bytes(bomb)
    (tmp_path / "lab").write_bytes(_idx(np.zeros(2, np.uint8)))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"img.gz: .*but the file has more; it is damaged"):
            load_idx(tmp_path / "img.gz", tmp_path / "lab")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20
    # A header that declares a huge shape is refused before any data is inflated.
    huge = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 10**6, 10**3, 10**3)
    (tmp_path / "img.gz").write_bytes(gzip.compress(huge + bytes(2**20)))
    with pytest.raises(ValueError, match=r"img.gz: .*1,000,000,000,000 bytes.*limit"):
        load_idx(tmp_path / "img.gz", tmp_path / "lab")


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (bytes([0, 0, 0x08, 255]), "declares 255 dimensions"),
        (bytes([0, 0, 0x08, 0]), "declares 0 dimensions"),
        (bytes([0, 0, 0x07, 1]), "type byte 07"),
    ],
)
def test_idx_impossible_headers_name_the_file(tmp_path, head, message):
    (tmp_path / "weird.idx").write_bytes(head + bytes(4 * 255 + 64))
    (tmp_path / "lab").write_bytes(_idx(np.zeros(2, np.uint8)))
    with pytest.raises(ValueError, match=message) as error:
        load_idx(tmp_path / "weird.idx", tmp_path / "lab")
    assert "weird.idx" in str(error.value)


def test_cifar10_size_is_checked_against_the_limit(tmp_path):
    (tmp_path / "b.bin").write_bytes(_cifar_records([1, 2, 3]))
    with pytest.raises(ValueError, match=r"b.bin: .*9,219 bytes.*limit"):
        load_cifar10([tmp_path / "b.bin"], max_bytes=4096)
    (tmp_path / "b.gz").write_bytes(gzip.compress(_cifar_records([1, 2, 3])))
    with pytest.raises(ValueError, match=r"b.gz: .*more than the limit"):
        load_cifar10([tmp_path / "b.gz"], max_bytes=4096)
    assert load_cifar10([tmp_path / "b.gz"])[0].shape == (3, 3, 32, 32)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,label\n1,0\n\xff\xfe\x00\x01", r"bin.csv: not UTF-8 text \(byte 0xff at offset 12\)"),
        (b"a,label\n1,0\n2\x00,1\n", r"bin.csv, line 3: .*NUL.*binary"),
        (bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8)), "bin.csv: not"),
    ],
)
def test_binary_file_given_as_csv_is_named(tmp_path, content, message):
    path = tmp_path / "bin.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_csv(path, "label")


def test_csv_size_is_checked_against_the_limit(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,label\n" + "1,0\n" * 1000)
    with pytest.raises(ValueError, match=r"big.csv: .*4,008 bytes.*limit"):
        load_csv(path, "label", max_bytes=1000)


def _digit_csv(path, rows=200_000, columns=20):
    """A CSV of single digits, 19 features and a label: 40 bytes of text a row, 84 of arrays."""
    digits = np.random.default_rng(0).integers(0, 10, (rows, columns), dtype=np.uint8)
    table = np.full((rows, 2 * columns), ord(","), dtype=np.uint8)
    table[:, 0::2] = digits + ord("0")
    table[:, -1] = ord("\n")
    header = ",".join(f"f{i}" for i in range(columns - 1)) + ",label\n"
    path.write_bytes(header.encode() + table.tobytes())
    return rows * ((columns - 1) * 4 + 8)


def _with_peak_bytes(call):
    """What ``call()`` gives, and the peak of Python's allocations (numpy's too) during it."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_csv_arrays_over_the_limit_are_refused_in_bounded_memory(tmp_path):
    # The limit once counted the file, while the parser held every cell as a Python
    # string (22x the file here). The 8 MB file is under a 12 MB limit; its arrays are not.
    path = tmp_path / "digits.csv"
    array_bytes = _digit_csv(path)
    limit = 12_000_000
    assert path.stat().st_size < limit < array_bytes

    def read():
        with pytest.raises(ValueError) as error:
            load_csv(path, "label", max_bytes=limit)
        message = str(error.value)
        assert message.startswith(f"{path}: the data of at least ")
        assert "rows x 20 columns" in message and "12,000,000 bytes" in message
        assert "LEAKY_MAX_DATA_BYTES" in message

    _, peak = _with_peak_bytes(read)
    assert peak < 2 * limit  # the whole-text parser peaked at 15x


def test_csv_read_holds_about_its_arrays_only(tmp_path):
    path = tmp_path / "digits.csv"
    array_bytes = _digit_csv(path)
    (x, y), peak = _with_peak_bytes(lambda: load_csv(path, "label"))
    assert x.shape == (200_000, 19) and y.shape == (200_000,)
    assert peak < 2 * array_bytes  # the whole-text parser peaked at 10x


def _reference_csv(text, label):
    """The old whole-text reader, kept as the slow and obvious reference: csv, then float()."""
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
    header = [name.strip() for name in rows[0]]
    values = np.array([[float(cell) for cell in row] for row in rows[1:]], dtype=np.float64)
    j = header.index(label)
    return np.delete(values, j, axis=1).astype(np.float32), values[:, j].astype(np.int64)


_AWKWARD_CSV = (
    "\ufeff\n"  # a BOM and a blank line before the header
    'f1, label ,"f 2",f3\r\n'
    "0.5,1,2,-3e-2\r\n"
    "\r\n"
    ' 7 ,0,"1.25",1_000\n'  # padded, quoted, an underscore (float() takes it)
    "1e38,2,+4,.5\r"  # a lone carriage return ends a line too
    ",,,\n"  # blank cells only: skipped
    "-0,1,\uff11,\u00a09\n"  # a full-width digit, a no-break space
    '3.4028234663852886e38,0,"2\n",1e-50\n'  # a quoted cell spanning lines
    + "".join(f"{i / 7},{i % 3},{i},{-i}\n" for i in range(300))
    + "12345678901234567890,2,0.1000000000000000055511151231257827,5"  # no line end
)


@pytest.mark.parametrize("block", [1, 7, 64, None])
@pytest.mark.parametrize("compress", [False, True])
def test_csv_gives_the_arrays_of_the_whole_text_reader(tmp_path, monkeypatch, block, compress):
    if block is not None:  # small blocks: every line and quote crosses a block boundary
        monkeypatch.setattr("leaky.data.files._CSV_BLOCK_BYTES", block)
    raw = _AWKWARD_CSV.encode()
    path = tmp_path / "awkward.csv"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    x, y = load_csv(path, "label")
    x_ref, y_ref = _reference_csv(_AWKWARD_CSV.removeprefix("\ufeff"), "label")
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.flags.c_contiguous
    assert x.shape == (306, 3) and x.tobytes() == x_ref.tobytes()
    assert y.tolist() == y_ref.tolist()
    plain = "a,label\n" + "".join(f"{i}.5,{i % 2}\n" for i in range(300))
    path.write_text(plain + "1,0,\n" + "x,1\n")  # rows are numbered as before, blocks or not
    with pytest.raises(ValueError, match=r"awkward.csv, line 302: 3 values for 2 columns"):
        load_csv(path, "label")
    path.write_text(plain + 'x,1\n"' + "9" * 200_000 + '",1\n')  # the csv error comes first
    with pytest.raises(ValueError, match=r"line 303: field larger than field limit"):
        load_csv(path, "label")


def test_diagnose_data_that_is_text_is_not_called_pickled(tmp_path):
    from leaky.diagnosis.diagnose import input_batches

    path = tmp_path / "junk.npz"
    path.write_text("hello, I am text\n")
    with pytest.raises(ValueError, match="junk.npz is a text file") as error:
        next(input_batches(data=path))
    assert "pickled" not in str(error.value)
    np.savez(path, x=np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="junk.npz: .*limit"):
        next(input_batches(data=path, max_bytes=10))
    assert next(input_batches(data=path, batch_size=2))[0].shape == (2, 3)


def test_diagnose_cli_names_a_text_file_given_as_npz(tmp_path):
    from click.testing import CliRunner

    from leaky.app.cli import cli

    model = tmp_path / "m.py"
    model.write_text("import torch\ndef make():\n    return torch.nn.Linear(3, 2)\n")
    junk = tmp_path / "junk.npz"
    junk.write_text("not an archive\n")
    result = CliRunner().invoke(cli, ["diagnose", f"{model}:make", "--data", str(junk)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "junk.npz is a text file, not an .npz archive" in result.output
    assert "pickled" not in result.output and result.output.strip().count("\n") == 0
