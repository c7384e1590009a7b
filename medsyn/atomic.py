"""Atomic, durable file writes: a reader sees the old file or the new one, never half of one, and after a power
loss the new one is there once the call returned (data fsynced before the rename, the folder after it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from medsyn.errors import StoreError

# Read once at import: os.umask can only be read by setting it, which is not safe to do while threads write.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename it over ``path``."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise StoreError(f"cannot write {p}: {exc.strerror or exc}") from None
    try:
        # mkstemp creates 0600 files; a report or dataset should get the usual permissions (0666 minus umask).
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        fsync_dir(p.parent)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StoreError(f"cannot write {p}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Fill a fresh directory beside ``target``; on success it is renamed over ``target`` (an old one removed),
    on any failure it is removed and ``target`` is left as it was.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> with atomic_dir(out) as tmp:
    ...     _ = (tmp / "config.json").write_text("{}")
    >>> sorted(p.name for p in out.iterdir())
    ['config.json']
    """
    t = Path(target)
    t.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{t.name}.", dir=t.parent))
    tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700 directories; a model or checkpoint should be readable
    try:
        yield tmp
        fsync_tree(tmp)
        if t.exists():
            shutil.rmtree(t)
        os.replace(tmp, t)
        fsync_dir(t.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def writable_folder(path: str | Path, what: str) -> None:
    """Create folder ``path`` if needed and check it can be written, or raise one line naming ``what``."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {what} {p}: {exc.strerror or exc}") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write to {what} {p}: permission denied")


def fsync_file(path: str | Path) -> None:
    """Make the data of an existing file durable (a no-op for a missing one)."""
    if Path(path).is_file():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new file in folder ``path`` durable (the folder entry, not only the data)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | Path) -> None:
    """fsync every file and folder under ``root`` (a checkpoint, a model or a store about to be renamed in)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fsync_file(os.path.join(dirpath, name))
        fsync_dir(dirpath)
