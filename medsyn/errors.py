"""One error type for everything a user can get wrong.

The CLI prints ``MedsynError`` as a single ``error: ...`` line and exits non-zero; anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path


class MedsynError(Exception):
    """A user-facing failure: bad input, a locked store, an unknown name.

    The message must fit on one line and name the file, line or field at fault.

    >>> str(MedsynError("bad weight", path="a.csv", line=3))
    'a.csv:3: bad weight'
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + " ".join(str(message).split()))


class InputError(MedsynError):
    """A source file, dataset line or option value is malformed."""


class StoreError(MedsynError):
    """The store cannot be opened, is locked by another process, or a write failed."""


class ValidationError(MedsynError):
    """The graph or a change to it breaks the ontology, SHACL shapes or the SPARQL checks."""

    exit_code = 1
