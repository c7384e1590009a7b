"""Helpers for the knowledge-graph tests: a data folder that mirrors the real one with a single file replaced."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from medsyn.kg.store import OxigraphStore


def data_with(real: Path, tmp: Path, rel: str, content: bytes) -> Path:
    """A copy of the real data tree (symlinks, except along ``rel``) in which ``rel`` holds ``content``."""
    root = tmp / "data"
    root.mkdir()
    _mirror(real, root, Path(rel).parts)
    target = root / rel
    target.unlink(missing_ok=True)
    target.write_bytes(content)
    return root


def _mirror(src: Path, dst: Path, parts: tuple[str, ...]) -> None:
    for child in sorted(src.iterdir()):
        if parts and child.name == parts[0] and child.is_dir():
            (dst / child.name).mkdir()
            _mirror(child, dst / child.name, parts[1:])
        elif parts and child.name == parts[0]:
            shutil.copyfile(child, dst / child.name)
        else:
            (dst / child.name).symlink_to(child)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[OxigraphStore]:
    """A read-only store, closed on exit (OxigraphStore.close() flushes, which read-only stores refuse)."""
    s = OxigraphStore(path, read_only=True)
    try:
        yield s
    finally:
        s.close()
