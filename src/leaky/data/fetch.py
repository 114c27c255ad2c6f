"""``leaky data fetch fsdd|mnist``: download a data set, check every file, move it into place.

The one place leaky touches the network, and only when a person asks.

FSDD: its tagged release's archive is
streamed into a private temporary folder beside the target (with a progress bar), every
recording under ``recordings/`` is checked against the SHA-256 list shipped with leaky
(``leaky/data/fsdd_SHA256SUMS``, the 3,000 recordings of the checked copy), and only when
all of it checks out is the folder renamed onto the target in one step. An interrupted,
truncated or corrupt download therefore leaves nothing that looks like a dataset: at most a
hidden ``.fsdd.PID.XXXXXXXX`` folder, which the next fetch removes.

Which files are checked: every recording in the archive whose name is in the list must
match its checksum exactly (one mismatch and nothing is installed). A recording the list
does not name (a release with a speaker the checked copy lacks) is left out and counted.
A release with fewer recordings than the list installs those it has, and says how many.

MNIST: its four gzipped IDX files, from PyTorch's public mirror by default, each checked
against MNIST's canonical MD5 sum (:data:`leaky.data.mnist.MNIST_MD5`), installed in the
same way: all four, or nothing.

Examples:
    >>> check_url("ftp://example.org/x.tar.gz")
    Traceback (most recent call last):
    ...
    leaky.system.errors.ParameterError: Expected an http:// or https:// URL for url, but got ...
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from leaky.data.fsdd import (
    _NAME,
    DATA_DIR_ENV,
    FSDD_CREDIT,
    FSDD_LICENSE,
    _wav_folder,
    fsdd_candidates,
    packaged_checksums,
)
from leaky.data.mnist import MNIST_CREDIT, MNIST_LICENSE, MNIST_MD5, mnist_candidates
from leaky.system.atomic import staging_folder
from leaky.system.errors import ParameterError

__all__ = [
    "FSDD_URL",
    "MNIST_URL",
    "FetchError",
    "FetchResult",
    "check_url",
    "fetch_fsdd",
    "fetch_mnist",
]

FSDD_URL = (
    "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
)
# torchvision's first mirror; the folder that holds the four .gz files.
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_MAX_ARCHIVE_BYTES = 256 * 2**20  # the 3,000 recordings are 27 MB as WAV files (du -sh)
_MAX_MNIST_FILE_BYTES = 64 * 2**20  # the largest, train-images, is 9.9 MB
_MAX_RECORDING_BYTES = 4 * 2**20  # the longest recording is 36 KB
_CHUNK = 2**16


class FetchError(Exception):
    """A download that failed or did not check out; nothing was installed."""


@dataclass(frozen=True)
class FetchResult:
    """Where the fetched data set is, and what the fetch did."""

    path: Path
    installed: int  # recordings moved into place (0 when it was there already)
    left_out: int = 0  # recordings in the archive that the checked list does not name
    not_in_archive: int = 0  # recordings of the checked list that the archive lacks
    already_present: bool = False

    def summary(self, name: str = "fsdd") -> list[str]:
        """What the fetch did, a sentence a line."""
        if self.already_present:
            return [f"{name} is already in {self.path}; nothing to do."]
        files = "files" if name == "mnist" else "recordings"
        lines = [f"Checked and installed {self.installed:,} {files} in {self.path}."]
        if self.left_out:
            lines.append(
                f"Left out {self.left_out:,} recordings that the checked list does not name."
            )
        if self.not_in_archive:
            lines.append(
                f"This release lacks {self.not_in_archive:,} recordings of the checked list "
                "(an older release has fewer speakers)."
            )
        return lines


def check_url(url: str) -> str:
    """Refuse anything but an http(s) URL (a file:// URL would read local files)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ParameterError(
            f"Expected an http:// or https:// URL for {{url}}, but got {url!r}", "url"
        )
    return url


def _offline_hint(what: str = "FSDD", folder: str = "fsdd") -> str:
    return (
        f"Without a network, copy a checked {what} folder from a machine that has one and "
        f"point --set data_dir=DIR or {DATA_DIR_ENV} (the folder that holds {folder}/) at it"
    )


def _download(
    url: str,
    archive: Path,
    timeout: float,
    progress: bool | None,
    what: str = "FSDD's release",
    max_bytes: int = _MAX_ARCHIVE_BYTES,
    hint: str | None = None,
) -> None:
    # Stream ``url`` into ``archive``, refusing more than ``max_bytes`` (``what`` names
    # what was expected; ``hint`` says what to do offline).
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > max_bytes:
                raise FetchError(
                    f"{url} announces {total:,} bytes, far more than {what}; nothing was installed"
                )
            received = 0
            with (
                archive.open("wb") as out,
                tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=archive.name,
                    disable=progress is False,
                    leave=False,
                ) as bar,
            ):
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise FetchError(
                            f"{url} sent more than {max_bytes:,} bytes, far more than "
                            f"{what}; nothing was installed"
                        )
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        raise FetchError(
            f"Cannot download {url}: HTTP {error.code} {error.reason}; nothing was installed"
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise FetchError(
            f"Cannot download {url} ({reason}): no network? Nothing was installed. "
            + (hint or _offline_hint())
        ) from None
    except OSError as error:  # the connection broke off mid-way, or the disk is full
        raise FetchError(f"The download of {url} failed ({error}); nothing was installed") from None
    if total is not None and received != total:
        raise FetchError(
            f"The download of {url} ended early ({received:,} of {total:,} bytes); nothing was "
            "installed: run the command again"
        )


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > _MAX_RECORDING_BYTES:
        raise FetchError(
            f"{member.name}: {member.size:,} bytes, far more than a spoken digit; the archive "
            "is not FSDD's; nothing was installed"
        )
    stream = archive.extractfile(member)
    if stream is None:  # pragma: no cover (regular files always have a stream)
        raise FetchError(f"{member.name}: cannot be read from the archive")
    return stream.read()


def _extract(
    archive_path: Path, out: Path, checksums: Mapping[str, str], url: str
) -> tuple[dict[str, str], int]:
    """Check and write every listed recording under ``recordings/``; (written, left out)."""
    written: dict[str, str] = {}
    left_out = 0
    out.mkdir()
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            for member in archive:
                parts = Path(member.name).parts
                # <release folder>/recordings/<name>.wav; the paths are ours, never the archive's
                if not member.isfile() or len(parts) != 3 or parts[1] != "recordings":
                    continue
                name = parts[2]
                if _NAME.fullmatch(name) is None:
                    continue
                if name not in checksums:
                    left_out += 1
                    continue
                data = _read_member(archive, member)
                digest = hashlib.sha256(data).hexdigest()
                if digest != checksums[name]:
                    raise FetchError(
                        f"{name}: its SHA-256 ({digest[:16]}...) differs from the checked list "
                        f"({checksums[name][:16]}...): the download is damaged or is not "
                        "FSDD's release; nothing was installed"
                    )
                (out / name).write_bytes(data)
                written[name] = digest
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise FetchError(
            f"The archive from {url} is damaged or truncated ({error}); nothing was installed: "
            "run the command again"
        ) from None
    if not written:
        unlisted = f"; {left_out} unlisted recordings" if left_out else ""
        raise FetchError(
            f"The archive from {url} has no FSDD recordings in a recordings/ folder (its "
            f"layout is not FSDD's release{unlisted}); nothing was installed"
        )
    return written, left_out


def _default_target() -> Path:
    return fsdd_candidates(None)[0][1]


def fetch_fsdd(
    target: str | os.PathLike[str] | None = None,
    *,
    url: str = FSDD_URL,
    checksums: Mapping[str, str] | None = None,
    progress: bool | None = None,
    timeout: float = 60.0,
) -> FetchResult:
    """Download FSDD into ``target`` (the folder that will hold ``recordings/``), checked.

    Args:
        target: default: ``$LEAKY_DATA_DIR/fsdd`` when that is set, else the user cache
            (``$XDG_CACHE_HOME/leaky/fsdd``).
        url: the release archive (``.tar.gz``). Default: FSDD's v1.0.10 tag on GitHub.
        checksums: file name -> SHA-256. Default: the list shipped with leaky.
        progress: a progress bar on stderr (None: tqdm's default).
        timeout: seconds without an answer before the download gives up.

    Raises:
        ValueError: a bad URL, or a ``target`` that exists, is not empty and holds no
            recordings (leaky never overwrites a folder it did not make).
        FetchError: no network, a truncated or corrupt download, a file whose checksum
            differs, or an archive without FSDD's layout. Nothing is installed then.
    """
    check_url(url)
    target = Path(target).expanduser() if target is not None else _default_target()
    if target.is_dir() and _wav_folder(target) is not None:
        return FetchResult(target, 0, already_present=True)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ParameterError(
            f"{target} exists and holds no FSDD recordings; remove it or choose another {{target}}",
            "target",
        )
    sums = dict(checksums) if checksums is not None else packaged_checksums()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"Cannot create {target.parent}: {error.strerror or error}") from None
    with staging_folder(target.parent, target.name) as stage:
        archive = stage / "release.tar.gz"
        _download(url, archive, timeout, progress)
        folder = stage / target.name
        folder.mkdir()
        written, left_out = _extract(archive, folder / "recordings", sums, url)
        archive.unlink()
        (folder / "SHA256SUMS").write_text(
            "".join(f"{digest}  {name}\n" for name, digest in sorted(written.items())), "ascii"
        )
        (folder / "README.txt").write_text(
            f"{FSDD_CREDIT}\nLicence: {FSDD_LICENSE} "
            "(https://creativecommons.org/licenses/by-sa/4.0/)\n"
            f"Downloaded by `leaky data fetch fsdd` from {url}; every recording was checked "
            "against SHA256SUMS.\n",
            "utf-8",
        )
        with contextlib.suppress(OSError):
            target.rmdir()  # an empty folder in the way (a non-empty one was refused above)
        os.replace(folder, target)  # one rename: the dataset appears complete or not at all
    return FetchResult(
        target, len(written), left_out=left_out, not_in_archive=len(set(sums) - set(written))
    )


def _mnist_target() -> Path:
    return next(place for label, place in mnist_candidates(None) if not label.endswith("-t10k"))


def fetch_mnist(
    target: str | os.PathLike[str] | None = None,
    *,
    url: str = MNIST_URL,
    checksums: Mapping[str, str] | None = None,
    progress: bool | None = None,
    timeout: float = 60.0,
) -> FetchResult:
    """Download MNIST's four files into ``target``, each checked against its MD5 sum.

    Args:
        target: default: ``$LEAKY_DATA_DIR/mnist`` when that is set, else the user cache
            (``$XDG_CACHE_HOME/leaky/mnist``).
        url: the folder that holds the four ``.gz`` files. Default: PyTorch's mirror.
        checksums: file name -> MD5 of the four files. Default: MNIST's canonical sums.
        progress: a progress bar on stderr (None: tqdm's default).
        timeout: seconds without an answer before the download gives up.

    Raises:
        ValueError: a bad URL, or a ``target`` that exists, is not empty and is not a
            complete MNIST (leaky never overwrites a folder it did not make).
        FetchError: no network, a truncated download or a file whose MD5 differs.
            Nothing is installed then.
    """
    check_url(url)
    sums = dict(checksums) if checksums is not None else MNIST_MD5
    base = url if url.endswith("/") else url + "/"
    target = Path(target).expanduser() if target is not None else _mnist_target()
    if target.is_dir() and all((target / name).is_file() for name in sums):
        return FetchResult(target, 0, already_present=True)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ParameterError(
            f"{target} exists and is not a complete MNIST; remove it or choose another {{target}}",
            "target",
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"Cannot create {target.parent}: {error.strerror or error}") from None
    with staging_folder(target.parent, target.name) as stage:
        folder = stage / target.name
        folder.mkdir()
        for name, expected in sums.items():
            path = folder / name
            _download(
                base + name,
                path,
                timeout,
                progress,
                what=f"MNIST's {name}",
                max_bytes=_MAX_MNIST_FILE_BYTES,
                hint=_offline_hint("MNIST", "mnist"),
            )
            digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
            if digest != expected:
                raise FetchError(
                    f"{name}: its MD5 ({digest}) differs from MNIST's ({expected}): the download "
                    "is damaged or is not MNIST; nothing was installed"
                )
        (folder / "MD5SUMS").write_text(
            "".join(f"{digest}  {name}\n" for name, digest in sums.items()), "ascii"
        )
        (folder / "README.txt").write_text(
            f"{MNIST_CREDIT}\nLicence: {MNIST_LICENSE} "
            "(https://creativecommons.org/licenses/by-sa/3.0/)\n"
            f"Downloaded by `leaky data fetch mnist` from {base}; every file was checked "
            "against MD5SUMS.\n",
            "utf-8",
        )
        with contextlib.suppress(OSError):
            target.rmdir()  # an empty folder in the way (a non-empty one was refused above)
        os.replace(folder, target)  # one rename: the data set appears complete or not at all
    return FetchResult(target, len(sums))
