"""Atomic file writes: readers never see a half-written result, and an interrupted write loses nothing old.

Files are written to a temporary name beside their target (``.NAME.XXXX.SUFFIX``, never read as a
result), synced, given the permissions the umask allows (like any file the user creates), then renamed
over the target. ``atomic_write_files`` writes several files so that they change together: every
temporary file is complete before the first rename, so a full disk leaves all the old files as they were.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

__all__ = ["atomic_write_bytes", "atomic_write_files", "atomic_path", "is_temporary", "file_mode"]


def file_mode() -> int:
    """0o666 less the process umask: the mode ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is one of our temporary files (a leftover of an interrupted write)."""
    return path.name.startswith(".")


def _temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, file_mode())
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix) to write to; it replaces ``path`` on success."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_synced(path: Path, data: bytes, target: Path) -> None:
    """Write and sync ``path``; an OSError without a file name (a full disk) names ``target``."""
    try:
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(target)) from None
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary file and a rename."""
    with atomic_path(path) as tmp:
        _write_synced(tmp, data, Path(path))


def atomic_write_files(contents: Mapping[str | Path, bytes]) -> None:
    """Write every file of ``contents`` completely to temporary files, then rename them all into place."""
    written: list[tuple[Path, Path]] = []
    try:
        for path, data in contents.items():
            tmp = _temporary(Path(path))
            written.append((tmp, Path(path)))
            _write_synced(tmp, data, Path(path))
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in written:
        os.replace(tmp, path)
