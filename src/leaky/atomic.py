"""Write result files all at once or not at all: no half-written file survives an error."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "ensure_output_dir"]


def ensure_output_dir(path: str | os.PathLike[str]) -> Path:
    """Create the output folder (and parents); a clear error if a file is in the way.

    Examples:
        >>> import tempfile
        >>> ensure_output_dir(Path(tempfile.mkdtemp()) / "a" / "b").is_dir()
        True

    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"Expected an output folder, but {str(out)!r} is a file; choose another --out"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"Cannot create the output folder {str(out)!r}: {error.strerror}"
        ) from None
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` only on success.

    The temporary name keeps the target's suffix, so writers that choose a format by
    suffix (``savefig``) still work.

    Examples:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "table.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'

    """
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are for sharing
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
