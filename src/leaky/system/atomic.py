"""Write result files all at once or not at all: no half-written file survives an error.

One rule for every output path, whichever command writes it: a result file is checked
before the work starts (:func:`check_output_file` creates nothing, so a refused or failed
command leaves no empty folder), and written whole at the end (:func:`atomic_path`, which
makes the folders it needs and removes them again if the write fails); an output folder
is made when the work starts (:func:`ensure_output_dir`). Each error names the parameter
that gave the path, so the command line can say its flag.

Temporary files and folders carry the writer's process id in their name
(``.NAME.PID.XXXXXXXX``), so the next writer of the same target removes those left by a
process that was killed, and leaves alone those of a writer still at work.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from leaky.system.errors import ParameterError

__all__ = [
    "atomic_path",
    "check_output_file",
    "ensure_output_dir",
    "remove_stale_temporaries",
    "staging_folder",
]

# mkstemp/mkdtemp's 8 random characters; before 0.2 the process id was not in the name.
_TEMPORARY = r"\.{name}\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{{8}}{suffix}"


def ensure_output_dir(path: str | os.PathLike[str], *, parameter: str = "out_dir") -> Path:
    """Create the output folder (and parents); a clear error if a file is in the way.

    ``parameter``: the argument that gave ``path``, named in the error.

    Examples:
        >>> import tempfile
        >>> ensure_output_dir(Path(tempfile.mkdtemp()) / "a" / "b").is_dir()
        True

    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ParameterError(
            f"Expected an output folder, but {str(out)!r} is a file; choose another "
            f"{{{parameter}}}",
            parameter,
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"Cannot create the output folder {str(out)!r}: {error.strerror}"
        ) from None
    return out


def check_output_file(
    path: str | os.PathLike[str],
    *,
    suffixes: tuple[str, ...] = (),
    parameter: str = "path",
    make_folders: bool = True,
) -> Path:
    """Check that a result file can be written at ``path`` later, creating nothing now.

    ``path`` must end in one of ``suffixes`` (any, when empty) and not be a folder; the
    nearest folder that exists above it must be a writable folder (the folders between are
    made when writing, unless ``make_folders`` is False: then its folder must exist).
    ``parameter``: the argument that gave ``path``, named in the errors.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> check_output_file(folder / "new" / "report.json") == folder / "new" / "report.json"
        True
        >>> (folder / "new").exists()
        False
        >>> check_output_file(folder / "r.txt", suffixes=(".json",), parameter="json_out")
        Traceback (most recent call last):
        ...
        leaky.system.errors.ParameterError: Expected json_out to be a .json file, but got '...r.txt'
    """
    target = Path(path)
    if suffixes and not target.name.lower().endswith(suffixes):
        raise ParameterError(
            f"Expected {{{parameter}}} to be a {' or '.join(suffixes)} file, but got {str(path)!r}",
            parameter,
        )
    if target.is_dir():
        raise ParameterError(
            f"Expected {{{parameter}}} to be a file path, but {str(target)!r} is a folder",
            parameter,
        )
    parent = target.parent
    if not make_folders and not parent.is_dir():
        raise ParameterError(
            f"Expected the folder {str(parent)!r} of {{{parameter}}} to exist"
            + ("" if parent.exists() else "; create it first"),
            parameter,
        )
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ParameterError(
            f"Expected an output folder, but {str(parent)!r} is a file; choose another "
            f"{{{parameter}}}",
            parameter,
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"Cannot write into the folder {str(parent)!r}: permission denied")
    return target


def _writer_gone(pid: str | None) -> bool:
    """Whether the process that made a temporary file has ended (no pid: an old leaky's)."""
    if pid is None:
        return True
    if os.name != "posix":  # no harmless way to ask; keep the file
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False  # someone else's live process, or not a process id at all
    return False


def remove_stale_temporaries(target: str | os.PathLike[str]) -> None:
    """Remove the temporary files (or folders) of ``target`` that killed writers left behind.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / ".table.abcd1234.txt").write_text("half")  # an old-style leftover
        >>> remove_stale_temporaries(folder / "table.txt")
        >>> list(folder.iterdir())
        []
    """
    target = Path(target)
    pattern = re.compile(
        _TEMPORARY.format(name=re.escape(target.stem), suffix=re.escape(target.suffix))
    )
    with contextlib.suppress(OSError):  # a folder we cannot list has nothing of ours
        for path in target.parent.glob(f".{target.stem}.*"):
            match = pattern.fullmatch(path.name)
            if match and _writer_gone(match["pid"]):
                with contextlib.suppress(OSError):  # another writer may be removing it too
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()


@contextlib.contextmanager
def staging_folder(parent: str | os.PathLike[str], name: str) -> Iterator[Path]:
    """Yield a new private folder in ``parent`` to build files in; removed afterwards.

    Move what was built into place with :func:`os.replace` before leaving the block;
    whatever is left (after an error) goes with the folder. Folders left by killed
    processes are removed first.

    Examples:
        >>> import tempfile
        >>> parent = Path(tempfile.mkdtemp())
        >>> with staging_folder(parent, "report") as stage:
        ...     _ = (stage / "page.txt").write_text("done")
        ...     os.replace(stage / "page.txt", parent / "page.txt")
        >>> sorted(p.name for p in parent.iterdir())
        ['page.txt']
    """
    parent = Path(parent)
    remove_stale_temporaries(parent / name)
    stage = Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}.", dir=parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    # Read, not set and reset: os.umask(0) leaves a moment in which files that other
    # threads create (claims, TensorBoard logs, the playground) get mode 0666.
    with contextlib.suppress(OSError, ValueError, StopIteration, IndexError):
        status = Path("/proc/self/status").read_text()
        return int(next(ln for ln in status.splitlines() if ln.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0)  # no /proc (not Linux): the only way to read it is to set it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` only on success.

    The folders ``target`` needs are made first and removed again if the block fails, so
    a failed write leaves nothing behind. The temporary name keeps the target's suffix,
    so writers that choose a format by suffix (``savefig``) still work.

    Examples:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "new" / "table.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'

    """
    target = Path(target)
    made = [folder for folder in target.absolute().parents if not folder.exists()]
    for folder in reversed(made):
        folder.mkdir()
    try:
        remove_stale_temporaries(target)
        fd, name = tempfile.mkstemp(
            prefix=f".{target.stem}.{os.getpid()}.", suffix=target.suffix, dir=target.parent
        )
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are for sharing
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except BaseException:
        for folder in made:  # innermost first; a folder someone else filled meanwhile stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
