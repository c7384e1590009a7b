"""Atomic, durable file writes: a reader sees the old file or the new one, never half of one, and after a power
loss the new one is there once the call returned (data fsynced before the rename, the folder after it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from medsyn.errors import InputError, StoreError
from medsyn.faults import pause_point
from medsyn.locks import hold, lock_beside

# Read once at import: os.umask can only be read by setting it, which is not safe to do while threads write.
_UMASK = os.umask(0)
os.umask(_UMASK)


def file_mode() -> int:
    """The mode a new file gets from ``open`` (0666 minus the umask): for files first made 0600 by ``mkstemp``."""
    return 0o666 & ~_UMASK


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
        os.fchmod(fd, file_mode())
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


BUILDING = "building"
OLD = "old"
"""Kinds of work folder beside a folder being replaced: the new one being filled, the old one renamed aside."""


def sibling(target: Path, kind: str) -> Path:
    """A fresh work folder name beside ``target``: ``.<name>.building-<pid>-<random>`` or ``.<name>.old-...``."""
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def leftovers(target: Path, kind: str) -> list[Path]:
    """Work folders of ``kind`` an earlier (killed) replace left beside ``target``, oldest first."""
    try:
        found = [p for p in target.parent.glob(f".{target.name}.{kind}-*") if p.is_dir()]
    except OSError:
        return []
    return sorted(found, key=lambda p: p.stat().st_mtime)


def swap_dir(new: Path, target: Path) -> None:
    """Replace folder ``target`` by the filled folder ``new`` with renames only; on failure the old one is put back.

    ``target -> .<name>.old-*``, ``new -> target``, fsync of the parent, then the old folder is removed. A kill at any
    point leaves either folder whole under ``target`` or only the ``.old-*`` one, which :func:`recover_dir` puts back.
    """
    aside = sibling(target, OLD)
    had_old = os.path.lexists(target)
    try:
        fsync_tree(new)
        pause_point("swap.filled")
        if had_old:
            os.rename(target, aside)
            pause_point("swap.aside")
        os.rename(new, target)
        fsync_dir(target.parent)
    except OSError as exc:
        if had_old and aside.exists() and not os.path.lexists(target):
            with contextlib.suppress(OSError):
                os.rename(aside, target)
        raise StoreError(f"cannot replace {target}: {exc.strerror or exc}") from None
    if had_old:
        pause_point("swap.done")
        shutil.rmtree(aside, ignore_errors=True)


def recover_dir(target: Path) -> list[str]:
    """Undo what a killed :func:`swap_dir` left: a missing ``target`` gets its newest ``.old-*`` folder back (the
    state before the replace), every other ``.building-*`` and ``.old-*`` folder is removed. Returns what was done.

    Only the holder of ``target``'s lock may call this: no replace of it is running then.
    """
    old, building = leftovers(target, OLD), leftovers(target, BUILDING)
    done = []
    if not os.path.lexists(target) and old:
        os.rename(old[-1], target)
        fsync_dir(target.parent)
        done.append(f"restored {target} from {old[-1].name}")
        old = old[:-1]
    for p in [*old, *building]:
        shutil.rmtree(p, ignore_errors=True)
        done.append(f"removed {p.name}")
    return done


@contextlib.contextmanager
def atomic_dir(target: str | Path, *, what: str = "output folder") -> Iterator[Path]:
    """Fill a fresh directory beside ``target``; on success it replaces ``target`` by renames (:func:`swap_dir`), on
    any failure it is removed and ``target`` is left as it was.

    ``target``'s lock (:func:`medsyn.locks.lock_beside`) is held throughout, so a second writer is refused, and
    what a killed earlier replace left is repaired first (:func:`recover_dir`, said on stderr).

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> with atomic_dir(out) as tmp:
    ...     _ = (tmp / "config.json").write_text("{}")
    >>> sorted(p.name for p in out.iterdir())
    ['config.json']
    """
    t = Path(target)
    writable_folder(t.parent, f"the folder of {what}")
    with hold(lock_beside(t), f"{what} {t}"):
        repaired = recover_dir(t)
        if repaired:
            print(f"recovered {what} {t}: " + "; ".join(repaired), file=sys.stderr)
        tmp = sibling(t, BUILDING)
        try:
            tmp.mkdir(0o777 & ~_UMASK)  # the usual permissions: a model or dataset should be readable
            yield tmp
            swap_dir(tmp, t)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def check_output(path: str | Path, *, folder: bool, inputs: Sequence[str | Path] = (), option: str = "--out") -> Path:
    """Refuse, before any work, an output a write would damage: an empty name, a symbolic link, a device, FIFO or
    folder where a file goes (a file where a folder goes), a file in a folder that does not exist, and an output that
    is, holds or is inside one of ``inputs`` (replacing it would delete them). Returns the path.

    >>> check_output("/dev/null", folder=False)
    Traceback (most recent call last):
    medsyn.errors.InputError: --out /dev/null: not a regular file (a device, FIFO, socket or folder); name a file
    """
    kind = "folder" if folder else "file"
    if not str(path).strip():
        raise InputError(f"{option}: empty path; name a {kind}")
    p = Path(path)
    if p.is_symlink():
        raise InputError(f"{option} {p}: a symbolic link; name the {kind} itself (a link is not replaced)")
    if os.path.lexists(p):
        mode = p.stat().st_mode
        if folder and not stat.S_ISDIR(mode):
            raise InputError(f"{option} {p}: exists and is not a folder")
        if not folder and not stat.S_ISREG(mode):
            raise InputError(f"{option} {p}: not a regular file (a device, FIFO, socket or folder); name a file")
    elif not folder and not p.parent.is_dir():
        raise InputError(f"{option} {p}: folder {p.parent} does not exist; create it first")
    _check_apart(p, inputs, option)
    return p


def _check_apart(out: Path, inputs: Sequence[str | Path], option: str) -> None:
    """An output that is, holds or is inside an input: writing it would replace or delete that input."""
    mine = out.resolve()
    for given in inputs:
        other = Path(given).resolve()
        if mine == other:
            relation = "is"
        elif other.is_relative_to(mine):
            relation = "holds"
        elif mine.is_relative_to(other):
            relation = "is inside"
        else:
            continue
        raise InputError(f"{option} {out}: {relation} the input {given}; name another output")


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
