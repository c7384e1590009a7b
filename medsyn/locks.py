"""Exclusive OS locks on a store or an output folder, released by the kernel when the holder dies (even kill -9).

A lock is ``fcntl.flock`` on a small lock file that records the holder's pid and command, so a refused process can
say who holds it. The lock file is never deleted: removing a file other processes may have open breaks flock.
Within one process the same lock may be taken again (nested holders share it), since flock locks of two open files
of the same process would exclude each other.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "out.lock"
>>> with hold(p, "folder out"):
...     with hold(p, "folder out"):  # re-entrant within a process
...         holder_pid(p) == os.getpid()
True
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from medsyn.errors import StoreError

_held: dict[Path, tuple[int, int]] = {}  # resolved lock path -> (fd, nesting depth)
_guard = threading.Lock()


class LockHeld(StoreError):
    """Another process holds the lock."""


def lock_beside(path: Path) -> Path:
    """The lock of a folder that is replaced as a whole (a store, an export, a merged model): ``<name>.lock`` beside
    it, so that it survives the swap of the folder."""
    return path.with_name(path.name + ".lock")


def holder_pid(lock_file: Path) -> int | None:
    """The pid recorded by the current (or last) holder, or None."""
    try:
        first = lock_file.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def _holder_text(lock_file: Path) -> str:
    try:
        lines = lock_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    if not lines or not lines[0].strip().isdigit():
        return "another process"
    # Redacted again: a lock file written before redaction may still hold a secret.
    cmd = f" ({' '.join(redact(lines[1].split()))[:80]})" if len(lines) > 1 and lines[1].strip() else ""
    return f"process {lines[0].strip()}{cmd}"


def acquire(lock_file: Path, what: str, *, wait_s: float = 0.0) -> None:
    """Take the lock or raise :class:`LockHeld` naming ``what`` and the holder (after ``wait_s`` seconds)."""
    key = Path(os.path.abspath(lock_file))
    with _guard:
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            return
        try:
            key.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise StoreError(f"cannot lock {what}: {key}: {exc.strerror or exc}") from None
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = _holder_text(key)
                    raise LockHeld(f"{what} is locked by {holder}; wait for it to finish or stop it") from None
                time.sleep(0.05)
            except OSError as exc:
                os.close(fd)
                raise StoreError(f"cannot lock {what}: {key}: {exc.strerror or exc}") from None
        # Record who holds it; the lock, not this text, is what excludes others.
        cmd = " ".join([_program(), *redact(sys.argv[1:])])[:200]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n{cmd}\n".encode("utf-8", "replace"), 0)
        _held[key] = (fd, 1)


_SECRET_OPTION = re.compile(r"^--?(?:[\w-]*-)?(?:token|password|secret|key)$", re.IGNORECASE)


def redact(args: list[str]) -> list[str]:
    """Command-line arguments with the values of secret options (``--token``, ``--password``, ``--api-key``...)
    replaced by ``***``: the lock file is readable by others and its text goes into error messages.

    >>> redact(["serve", "--token", "s3cret", "--api-key=k", "--max-tokens", "5"])
    ['serve', '--token', '***', '--api-key=***', '--max-tokens', '5']
    """
    out: list[str] = []
    hide_next = False
    for arg in args:
        name, eq, _ = arg.partition("=")
        if hide_next:
            out.append("***")
            hide_next = False
        elif _SECRET_OPTION.match(name):
            out.append(name + "=***" if eq else arg)
            hide_next = not eq
        else:
            out.append(arg)
    return out


def _program() -> str:
    """``medsyn`` for both the console script and ``python -m medsyn`` (whose argv[0] is ``.../__main__.py``)."""
    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    return first.parent.name if first.name == "__main__.py" else first.name


def release(lock_file: Path) -> None:
    key = Path(os.path.abspath(lock_file))
    with _guard:
        if key not in _held:
            return
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
            return
        del _held[key]
        os.close(fd)  # closing the last descriptor releases the flock


def is_held_here(lock_file: Path) -> bool:
    return Path(os.path.abspath(lock_file)) in _held


@contextlib.contextmanager
def hold(lock_file: Path, what: str, *, wait_s: float = 0.0) -> Iterator[None]:
    """``with hold(path, "store x"):`` the lock for the block (see :func:`acquire`)."""
    acquire(lock_file, what, wait_s=wait_s)
    try:
        yield
    finally:
        release(lock_file)
