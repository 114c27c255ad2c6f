"""MNIST's real handwritten digits from disk: the full set, or its 10,000 test images split.

MNIST (LeCun, Cortes and Burges; CC BY-SA 3.0) is four gzipped IDX files, each checked
against the canonical MD5 sums that PyTorch's and TensorFlow's loaders check
(:data:`MNIST_MD5`). Nothing is downloaded at run time: the files are read from the first of

1. the ``data_dir`` argument (``--set data_dir=DIR`` where a config has one),
2. ``$LEAKY_DATA_DIR/mnist``, then ``$LEAKY_DATA_DIR/mnist-t10k``,
3. the user cache, ``$XDG_CACHE_HOME/leaky/mnist`` (``~/.cache/leaky/mnist``),

that holds the two test files. ``leaky data fetch mnist`` puts all four in the user cache.

Two ways to split, and every figure says which one it ran on:

- **full**: all four files are there: MNIST's own 60,000 training / 10,000 test images.
- **test set split**: only the 10,000 test images are there (as in the checked copy the
  project's own tests and CI read): a seeded, stratified 8,000 / 2,000 split of them
  (:data:`T10K_SPLIT`, seed 0 whatever the run's seed, so every run sees the same split).
  Published MNIST numbers (trained on 60,000) are not comparable to runs on it.

Pixels are scaled to [0, 1] and standardised with the training split's mean and standard
deviation (one number each), shape ``(1, 28, 28)``.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from leaky.data.dataset import Dataset
from leaky.data.files import load_idx
from leaky.data.fsdd import DATA_DIR_ENV, user_cache_dir

__all__ = [
    "MNIST_CREDIT",
    "MNIST_FETCH_COMMAND",
    "MNIST_LICENSE",
    "MNIST_MD5",
    "T10K_SPLIT",
    "MnistNotFoundError",
    "MnistStatus",
    "cached_mnist",
    "check_mnist_file",
    "find_mnist",
    "load_mnist",
    "mnist_candidates",
    "mnist_status",
]

# The canonical sums of the four files (the ones torchvision's MNIST class checks).
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_TRAIN = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
_TEST = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
T10K_SPLIT = (8000, 2000)  # train / test images drawn from the 10,000 when only they are here
_SPLIT_SEED = 0
MNIST_LICENSE = "CC BY-SA 3.0"
MNIST_CREDIT = "MNIST, Yann LeCun, Corinna Cortes and Christopher J. C. Burges"
MNIST_FETCH_COMMAND = "leaky data fetch mnist"


class MnistNotFoundError(ValueError):
    """No MNIST test files in any of the places looked at (the message lists them)."""


def mnist_candidates(data_dir: str | os.PathLike[str] | None = None) -> list[tuple[str, Path]]:
    """Where MNIST is looked for, in order, each with where that place comes from.

    Examples:
        >>> mnist_candidates("/data/mnist")
        [('data_dir', PosixPath('/data/mnist'))]
    """
    if data_dir is not None and str(data_dir).strip():
        return [("data_dir", Path(data_dir).expanduser())]
    places = []
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        root = Path(env).expanduser()
        places += [(f"${DATA_DIR_ENV}/mnist", root / "mnist")]
        places += [(f"${DATA_DIR_ENV}/mnist-t10k", root / "mnist-t10k")]
    places.append(("user cache", user_cache_dir() / "mnist"))
    return places


def _has(folder: Path, names: tuple[str, ...]) -> bool:
    return all((folder / name).is_file() for name in names)


def find_mnist(
    data_dir: str | os.PathLike[str] | None = None, *, data_dir_option: bool = True
) -> Path:
    """The first folder of :func:`mnist_candidates` that holds MNIST's two test files.

    Raises:
        MnistNotFoundError: none does; the message lists the places and how to get the data.
    """
    places = mnist_candidates(data_dir)
    for _, place in places:
        if _has(place, _TEST):
            return place
    looked = "; ".join(f"{label}: {place}" for label, place in places)
    point = "--set data_dir=DIR or " if data_dir_option else ""
    raise MnistNotFoundError(
        f"MNIST is not here (looked for {_TEST[0]} in {looked}). Get it with "
        f"`{MNIST_FETCH_COMMAND}`, or point {point}{DATA_DIR_ENV} (which holds mnist/) at a copy"
    )


def check_mnist_file(path: Path, checksums: Mapping[str, str] | None = None) -> None:
    """Check one of MNIST's four files against its canonical MD5 sum (or ``checksums``').

    Raises:
        ValueError: the sum differs (the file is named, with how to get a good copy), or the
            file cannot be read.
    """
    try:
        digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    except OSError as error:
        raise ValueError(f"Cannot read {path}: {error.strerror or error}") from None
    expected = (checksums or MNIST_MD5)[path.name]
    if digest != expected:
        raise ValueError(
            f"{path}: its MD5 ({digest}) is not MNIST's ({expected}): the file is "
            f"damaged or is not MNIST's; fetch a fresh copy with `{MNIST_FETCH_COMMAND}`"
        )


@dataclass(frozen=True)
class MnistStatus:
    """Whether MNIST is on this machine: ``full``, ``test set``, ``absent`` or ``damaged``."""

    state: str
    where: str  # the folder read; where it was looked for; or the damaged file's error


def mnist_status(data_dir: str | os.PathLike[str] | None = None) -> MnistStatus:
    """Look for MNIST as the experiments would, and check each file's MD5."""
    try:
        folder = find_mnist(data_dir)
    except MnistNotFoundError:
        return MnistStatus("absent", ", ".join(str(p) for _, p in mnist_candidates(data_dir)))
    full = _has(folder, _TRAIN)
    try:
        for name in (*_TRAIN, *_TEST) if full else _TEST:
            check_mnist_file(folder / name)
    except ValueError as error:
        return MnistStatus("damaged", str(error))
    return MnistStatus("full" if full else "test set", str(folder))


def _stratified_split(labels: np.ndarray, train: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Indices of a seeded split with each class in the same share in both parts.
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    first, second = train_test_split(
        indices, train_size=train, stratify=labels, random_state=seed, shuffle=True
    )
    return np.sort(first), np.sort(second)


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    """MNIST as a classification task on standardised ``(1, 28, 28)`` images.

    The full set's own split when its four files are there, else a seeded, stratified
    8,000 / 2,000 split of the 10,000 test images (see the module's notes); the
    :class:`~leaky.data.Dataset`'s ``description`` says which. ``checksums`` (file name ->
    MD5) replaces MNIST's canonical sums, for files made elsewhere (tests).

    Raises:
        ValueError: the files are not found (the message says where it looked and how to
            get them), or one differs from MNIST's MD5 sum.
    """
    folder = find_mnist(data_dir)
    full = _has(folder, _TRAIN)
    for name in (*_TRAIN, *_TEST) if full else _TEST:
        check_mnist_file(folder / name, checksums)
    x_test, y_test = load_idx(folder / _TEST[0], folder / _TEST[1])
    if full:
        x_train, y_train = load_idx(folder / _TRAIN[0], folder / _TRAIN[1])
        split = "MNIST, official split: 60,000 train / 10,000 test"
    else:
        train, test = _stratified_split(y_test, T10K_SPLIT[0], _SPLIT_SEED)
        x_train, y_train = x_test[train], y_test[train]
        x_test, y_test = x_test[test], y_test[test]
        split = (
            f"MNIST test set only: a stratified {len(train):,} / {len(test):,} split of its "
            f"10,000 images (seed {_SPLIT_SEED}); not comparable to published MNIST numbers"
        )
    mean, std = float(x_train.mean()), float(x_train.std())

    def standardised(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((x - mean) / std).astype(np.float32))

    return Dataset(
        "mnist",
        standardised(x_train),
        torch.from_numpy(y_train),
        standardised(x_test),
        torch.from_numpy(y_test),
        10,
        "classification",
        split,
        f"{MNIST_CREDIT}, {MNIST_LICENSE}; {folder}; MD5 checked",
    )


def cached_mnist(data_dir: str | None = None) -> Dataset:
    """:func:`load_mnist` once per process and folder (the tensors are shared: read-only).

    The folder is found first, so a changed ``$LEAKY_DATA_DIR`` is another dataset.
    """
    return _cached_mnist(str(find_mnist(data_dir or None).resolve()))


@functools.lru_cache(maxsize=2)
def _cached_mnist(directory: str) -> Dataset:
    return load_mnist(directory)
