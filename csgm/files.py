"""Atomic file writes: readers never see a half-written result, and an interrupted write loses nothing old.

Files are written to a temporary name beside their target (``.NAME.XXXX.SUFFIX``, never read as a
result), synced, given the permissions the umask allows (like any file the user creates), then renamed
over the target. ``atomic_write_files`` writes several files so that they change together: every
temporary file is complete before the first rename, so a full disk leaves all the old files as they were.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

from csgm.errors import CsgmError
from typing import Callable, Iterator, Mapping, Sequence

__all__ = [
    "atomic_write_bytes",
    "atomic_write_files",
    "atomic_path",
    "temporary_file",
    "is_temporary",
    "file_mode",
    "cached_digest",
    "content_digest",
    "json_bytes",
    "read_csv_rows",
]


def file_mode() -> int:
    """0o666 less the process umask: the mode ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is one of our temporary files (a leftover of an interrupted write)."""
    return path.name.startswith(".")


def temporary_file(path: str | Path) -> Path:
    """A new empty temporary file beside ``path`` (same suffix, never read as a result): write it completely, then
    hand it to ``atomic_write_files`` as ``path``'s content."""
    return _temporary(Path(path))


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


def atomic_write_files(contents: Mapping[str | Path, bytes | Path]) -> None:
    """Write every file of ``contents`` completely to temporary files, then rename them all into place. A Path value
    is such a temporary file already written completely (``temporary_file``, synced by its writer): it is renamed
    with the others, so a file too large to hold in memory changes together with the rest."""
    written: list[tuple[Path, Path]] = [(data, Path(path)) for path, data in contents.items() if isinstance(data, Path)]
    try:
        for path, data in contents.items():
            if isinstance(data, Path):
                continue
            tmp = _temporary(Path(path))
            written.append((tmp, Path(path)))
            _write_synced(tmp, data, Path(path))
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in written:
        os.replace(tmp, path)


def cached_digest(path: str | Path, cache_file: str | Path | None, compute: Callable[[Path], str]) -> str:
    """``compute(path)``, cached in ``cache_file`` (JSON) by the file's identity (real path, inode, size,
    modification and change times): a large file is digested once, and a file replaced at the same path
    (a new inode or change time) is digested again. The cache only saves time: errors writing it are ignored."""
    path = Path(path).expanduser().resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"
    cache: dict[str, str] = {}
    if cache_file is not None and Path(cache_file).is_file():
        try:
            cache = json.loads(Path(cache_file).read_text())
        except (OSError, ValueError):
            cache = {}
    if key not in cache:
        cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")}
        cache[key] = compute(path)
        if cache_file is not None:
            try:
                atomic_write_bytes(cache_file, json.dumps(cache, indent=0, sort_keys=True).encode())
            except OSError:
                pass
    return cache[key]


def content_digest(path: Path) -> str:
    """sha256 of a file's bytes (16 hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _finite(value: object) -> object:
    """``value`` with every NaN or infinite float (at any depth of dicts, lists and tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_bytes(value: object, indent: int = 1) -> bytes:
    """Valid JSON (RFC 8259) of ``value``: a NaN or infinity, which JSON cannot hold, is written as null."""
    return json.dumps(_finite(value), indent=indent, allow_nan=False).encode()


def read_csv_rows(
    path: str | Path,
    text: Sequence[str] = (),
    integers: Sequence[str] = (),
    numbers: Sequence[str] = (),
    blank_numbers: Sequence[str] = (),
) -> list[dict[str, str]]:
    """The rows of a CSV table csgm wrote, checked, since a hand-edited table must not give silently wrong figures:
    the columns present, every ``integers`` value an integer, every ``numbers`` value a number (``nan`` included)
    and every ``blank_numbers`` value a number or empty; the first problem fails in one line naming the file, row and column."""
    path = Path(path)
    if not path.is_file():
        raise CsgmError(f"{str(path)!r} is missing; re-run recover.py in {str(path.parent)!r} to write it")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        missing = [c for c in (*text, *integers, *numbers, *blank_numbers) if c not in (reader.fieldnames or [])]
    if missing:
        raise CsgmError(f"{str(path)!r} has no column {', '.join(missing)}; re-run recover.py to write it again")
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        for column in (*integers, *numbers, *blank_numbers):
            value = row[column]
            if not (column in blank_numbers and value in ("", None)) and not _parses(value, column in integers):
                kind = "an integer" if column in integers else "a number"
                raise CsgmError(
                    f"{str(path)!r} line {line}: {column}={value!r} is not {kind}; fix the value or re-run recover.py"
                )
    return rows


def _parses(value: str | None, integer: bool) -> bool:
    """Whether a CSV cell reads as an integer (``integer``) or as a float."""
    try:
        int(value) if integer else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True
