"""The Free Spoken Digit Dataset (FSDD): real recordings of spoken digits, as log-mel spectrograms.

3,000 recordings (8 kHz mono 16-bit WAV) of the digits 0-9 by six English speakers, 50 of
each digit per speaker, named ``{digit}_{speaker}_{index}.wav`` (Jakobovski et al., CC BY-SA
4.0). Nothing is downloaded at run time: the recordings are read from a directory, the
first of

1. the ``data_dir`` argument (``--set data_dir=DIR`` on the command line),
2. ``$LEAKY_DATA_DIR/fsdd``,
3. the user cache, ``$XDG_CACHE_HOME/leaky/fsdd`` (``~/.cache/leaky/fsdd``),

where ``leaky data fetch fsdd`` puts them. A directory holds the WAV files, or a
``recordings/`` folder of them; a ``SHA256SUMS`` file beside it, when there is one, is
checked against every recording.

Two splits: the dataset's official one (recordings 0-4 of each digit and speaker are the
test set, 5-49 train), and a speaker-held-out one (``holdout_speaker=NAME``: train on the
other five speakers, test on this one), the honest test of generalisation to a new voice.

The log-mel spectrograms (:mod:`leaky.data.log_mel`) of every recording are cached on disk,
keyed by the recordings' SHA-256 and the feature settings, in
``$XDG_CACHE_HOME/leaky/features``; each mel band is normalised with the mean and standard
deviation of the training split only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from leaky.data.dataset import Dataset
from leaky.data.log_mel import MelSettings, log_mel
from leaky.data.wav import read_wav
from leaky.system.atomic import atomic_path

__all__ = [
    "DATA_DIR_ENV",
    "FETCH_COMMAND",
    "FSDD_CREDIT",
    "FSDD_DESCRIPTION",
    "FSDD_LICENSE",
    "FSDD_SPEAKERS",
    "FsddNotFoundError",
    "FsddStatus",
    "Recording",
    "cached_fsdd",
    "example_spectrograms",
    "find_fsdd",
    "fingerprint",
    "fsdd_candidates",
    "fsdd_recordings",
    "fsdd_status",
    "load_fsdd",
    "log_mel_features",
    "packaged_checksums",
    "parse_checksums",
    "user_cache_dir",
]

DATA_DIR_ENV = "LEAKY_DATA_DIR"
FSDD_SPEAKERS: tuple[str, ...] = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
FSDD_LICENSE = "CC BY-SA 4.0"
FSDD_DESCRIPTION = "3,000 real spoken digits (6 speakers, 8 kHz WAV), 10 classes"
FSDD_CREDIT = (
    "Free Spoken Digit Dataset (FSDD), Jakobovski et al., "
    "github.com/Jakobovski/free-spoken-digit-dataset"
)
FETCH_COMMAND = "leaky data fetch fsdd"
_NAME = re.compile(r"(?P<digit>[0-9])_(?P<speaker>[a-z]+)_(?P<index>[0-9]+)\.wav")
_TEST_INDICES = range(5)  # the official split: recordings 0-4 test, 5-49 train
_CACHE_VERSION = 1  # bump when the cached arrays change meaning


@dataclass(frozen=True)
class Recording:
    """One recording: its file, what is said, by whom, and the file's SHA-256."""

    path: Path
    digit: int
    speaker: str
    index: int
    sha256: str


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/leaky``, else ``~/.cache/leaky``."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "leaky"


def fsdd_candidates(data_dir: str | os.PathLike[str] | None = None) -> list[tuple[str, Path]]:
    """Where FSDD is looked for, in order, each with where that place comes from."""
    if data_dir is not None and str(data_dir).strip():
        return [("data_dir", Path(data_dir).expanduser())]
    places = []
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        places.append((f"${DATA_DIR_ENV}/fsdd", Path(env).expanduser() / "fsdd"))
    places.append(("user cache", user_cache_dir() / "fsdd"))
    return places


def _wav_folder(directory: Path) -> Path | None:
    for folder in (directory / "recordings", directory):
        if folder.is_dir() and any(p.suffix.lower() == ".wav" for p in folder.iterdir()):
            return folder
    return None


class FsddNotFoundError(ValueError):
    """No FSDD recordings in any of the places looked at (the message lists them)."""


@dataclass(frozen=True)
class FsddStatus:
    """Whether FSDD is on this machine: ``present``, ``absent`` or ``damaged``, and where."""

    state: str
    where: str  # the folder read; where it was looked for; or the damaged file's error
    recordings: int = 0


def fsdd_status(data_dir: str | os.PathLike[str] | None = None) -> FsddStatus:
    """Look for FSDD as the experiments would, and check every recording's name and sum."""
    try:
        where = find_fsdd(data_dir)
    except FsddNotFoundError:
        looked = ", ".join(str(place) for _, place in fsdd_candidates(data_dir))
        return FsddStatus("absent", looked)
    try:
        return FsddStatus("present", str(where), len(fsdd_recordings(where)))
    except ValueError as error:  # there, but a file is misnamed, corrupt or missing
        return FsddStatus("damaged", str(error))


def find_fsdd(
    data_dir: str | os.PathLike[str] | None = None, *, data_dir_option: bool = True
) -> Path:
    """The FSDD directory to read (the one holding the WAV files or ``recordings/``).

    ``data_dir_option``: whether the caller takes ``--set data_dir=DIR`` (the message
    offers it only then).

    Raises:
        ValueError: no recordings in any of the places looked at; the message lists them
            and says how to get the data.
    """
    places = fsdd_candidates(data_dir)
    for _, place in places:
        if place.is_dir() and _wav_folder(place) is not None:
            return place
    looked = "; ".join(f"{label}: {place}" for label, place in places)
    point = "--set data_dir=DIR or " if data_dir_option else ""
    raise FsddNotFoundError(
        f"The Free Spoken Digit Dataset (FSDD) is not here (looked in {looked}). Get it with "
        f"`{FETCH_COMMAND}`, or point {point}{DATA_DIR_ENV} (which holds fsdd/) at a copy"
    )


def parse_checksums(text: str, source: str) -> dict[str, str]:
    """``sha256sum`` output (``HASH  NAME`` lines) as name -> hash.

    Examples:
        >>> parse_checksums("ab" * 32 + "  0_theo_1.wav", "SUMS")["0_theo_1.wav"][:4]
        'abab'
    """
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not name:
            raise ValueError(f"{source}, line {number}: expected 'SHA256  NAME', got {line!r}")
        sums[Path(name).name] = digest
    return sums


def packaged_checksums() -> dict[str, str]:
    """The SHA-256 of every FSDD recording, as checked when leaky was made (3,000 files)."""
    text = resources.files("leaky.data").joinpath("fsdd_SHA256SUMS").read_text("ascii")
    return parse_checksums(text, "leaky/data/fsdd_SHA256SUMS")


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise ValueError(f"Cannot read {path}: {error.strerror or error}") from None


def fsdd_recordings(directory: str | os.PathLike[str]) -> list[Recording]:
    """Every recording in an FSDD directory, sorted by file name, each file's name checked.

    Raises:
        ValueError: naming the file: a ``.wav`` whose name is not
            ``{digit}_{speaker}_{index}.wav``, or (when the directory has a ``SHA256SUMS``)
            a file whose checksum differs, a file the list does not name, or listed files
            that are missing.
    """
    directory = Path(directory)
    folder = _wav_folder(directory)
    if folder is None:
        raise ValueError(f"{directory}: no .wav recordings in it or in {directory / 'recordings'}")
    recordings = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() != ".wav":
            continue  # README, licence, checksums
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise ValueError(
                f"{path}: expected an FSDD file name {{digit}}_{{speaker}}_{{index}}.wav "
                "(for example 7_jackson_32.wav); rename or remove this file"
            )
        recordings.append(
            Recording(
                path,
                int(match["digit"]),
                match["speaker"],
                int(match["index"]),
                _sha256(path),
            )
        )
    sums_file = next(
        (p for p in (folder / "SHA256SUMS", directory / "SHA256SUMS") if p.is_file()), None
    )
    if sums_file is not None:
        _check_against(recordings, parse_checksums(sums_file.read_text("ascii"), str(sums_file)))
    return recordings


def _check_against(recordings: list[Recording], sums: dict[str, str]) -> None:
    fix = f"fetch a fresh copy with `{FETCH_COMMAND}`"
    for recording in recordings:
        expected = sums.get(recording.path.name)
        if expected is None:
            raise ValueError(f"{recording.path}: not listed in SHA256SUMS; remove it, or {fix}")
        if expected != recording.sha256:
            raise ValueError(
                f"{recording.path}: its SHA-256 differs from SHA256SUMS (the file changed or "
                f"is damaged); {fix}"
            )
    missing = sorted(set(sums) - {r.path.name for r in recordings})
    if missing:
        raise ValueError(
            f"{recordings[0].path.parent}: {len(missing):,} recordings listed in SHA256SUMS are "
            f"missing (first: {missing[0]}); {fix}"
        )


def fingerprint(recordings: list[Recording]) -> str:
    """The SHA-256 of the recordings' names and checksums: which data a result came from."""
    lines = "".join(f"{r.sha256}  {r.path.name}\n" for r in recordings)
    return hashlib.sha256(lines.encode()).hexdigest()


def _feature_cache_path(
    cache_dir: Path, recordings: list[Recording], settings: MelSettings
) -> Path:
    key = json.dumps(
        {"data": fingerprint(recordings), "settings": settings.as_dict(), "v": _CACHE_VERSION},
        sort_keys=True,
    )
    return cache_dir / f"fsdd-log-mel-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"


def log_mel_features(
    recordings: list[Recording],
    settings: MelSettings,
    cache_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """The ``(N, n_mels, frames)`` log-mel spectrograms of ``recordings``, cached on disk.

    The cache file's name holds a hash of every file's SHA-256 and of the settings, so a
    changed recording or setting is a new file; it is written atomically, and a damaged
    one is computed again.
    """
    folder = Path(cache_dir) if cache_dir is not None else user_cache_dir() / "features"
    path = _feature_cache_path(folder, recordings, settings)
    shape = (len(recordings), settings.n_mels, settings.frames)
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == shape and cached.dtype == np.float32:
                return cached
        except (OSError, ValueError):
            pass  # damaged: computed and written again below
    features = log_mel([read_wav(r.path, rate=settings.sample_rate) for r in recordings], settings)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.save(handle, features.astype(np.float32), allow_pickle=False)
    except OSError:
        pass  # a cache that cannot be written costs time, not results
    return features


def _split(recordings: list[Recording], holdout_speaker: str | None) -> np.ndarray:
    """True for the test recordings."""
    if not holdout_speaker:
        return np.array([r.index in _TEST_INDICES for r in recordings])
    speakers = sorted({r.speaker for r in recordings})
    if holdout_speaker not in speakers:
        raise ValueError(
            f"Expected holdout_speaker among the speakers of this copy of FSDD "
            f"({', '.join(speakers)}), but got {holdout_speaker!r}"
        )
    if len(speakers) < 2:
        raise ValueError(
            f"holdout_speaker needs recordings of two speakers or more; found {speakers}"
        )
    return np.array([r.speaker == holdout_speaker for r in recordings])


def load_fsdd(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    holdout_speaker: str | None = None,
    settings: MelSettings | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """FSDD as a classification task on ``(1, n_mels, frames)`` log-mel spectrograms.

    Args:
        data_dir: the FSDD directory; default: ``$LEAKY_DATA_DIR/fsdd``, then the user cache.
        holdout_speaker: test on this speaker, train on the others; default: the official
            split (recordings 0-4 test, 5-49 train).
        settings: the spectrogram's settings. Default: :class:`MelSettings`.
        cache_dir: where the features are cached. Default: ``$XDG_CACHE_HOME/leaky/features``.

    Raises:
        ValueError: the data is not found (the message says where it looked and how to get
            it), a malformed file (named), or an unknown ``holdout_speaker``.
    """
    settings = settings or MelSettings()
    directory = find_fsdd(data_dir)
    recordings = fsdd_recordings(directory)
    test = _split(recordings, holdout_speaker)
    if test.all() or not test.any():
        raise ValueError(f"{directory}: this split leaves no training or no test recordings")
    features = log_mel_features(recordings, settings, cache_dir)
    train = features[~test]
    mean = train.mean(axis=(0, 2), keepdims=True)  # per mel band, training split only
    std = train.std(axis=(0, 2), keepdims=True) + 1e-6
    x = torch.from_numpy(((features - mean) / std).astype(np.float32)).unsqueeze(1)
    y = torch.tensor([r.digit for r in recordings], dtype=torch.long)
    test_mask = torch.from_numpy(test)
    split = f"speaker {holdout_speaker} held out" if holdout_speaker else "official split"
    return Dataset(
        "fsdd",
        x[~test_mask],
        y[~test_mask],
        x[test_mask],
        y[test_mask],
        10,
        "classification",
        f"FSDD spoken digits, log-mel {settings.n_mels}x{settings.frames}, {split}",
        f"{FSDD_CREDIT}, {FSDD_LICENSE}; {directory}; sha256 {fingerprint(recordings)[:16]}",
    )


def cached_fsdd(data_dir: str | None, holdout_speaker: str | None) -> Dataset:
    """:func:`load_fsdd` once per process, folder and split (the tensors are shared: read-only).

    The folder is found first, so a changed ``$LEAKY_DATA_DIR`` is another dataset.
    """
    return _cached_fsdd(str(find_fsdd(data_dir or None).resolve()), holdout_speaker or "")


@functools.lru_cache(maxsize=4)
def _cached_fsdd(directory: str, holdout_speaker: str) -> Dataset:
    return load_fsdd(directory, holdout_speaker=holdout_speaker or None)


def example_spectrograms(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    per_digit: int = 3,
    settings: MelSettings | None = None,
) -> list[tuple[int, str, np.ndarray]]:
    """``(digit, speaker, log-mel)`` of recording 0 of each digit by the first speakers.

    What a speech network sees, for a figure: ``per_digit`` speakers (in name order), the
    same ones for every digit; only these few files are read.
    """
    settings = settings or MelSettings()
    recordings = fsdd_recordings(find_fsdd(data_dir))
    speakers = sorted({r.speaker for r in recordings})[:per_digit]
    chosen = {(r.digit, r.speaker): r for r in sorted(recordings, key=lambda r: r.index)}
    picked = [
        chosen[(digit, speaker)]
        for speaker in speakers
        for digit in range(10)
        if (digit, speaker) in chosen
    ]
    mels = log_mel([read_wav(r.path, rate=settings.sample_rate) for r in picked], settings)
    return [(r.digit, r.speaker, mel) for r, mel in zip(picked, mels, strict=True)]
