"""One error type for everything a user can get wrong, and the exit statuses of the command line.

The CLI prints ``MedsynError`` as a single ``error: ...`` line and exits non-zero; anything else is a bug.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """What ``medsyn``'s exit status means, for every command (README "Exit status").

    >>> [int(c) for c in ExitCode]
    [0, 1, 2, 130]
    """

    OK = 0
    FINDING = 1
    """The command ran and found a problem: an altered or missing note, two versions that differ, a graph that fails
    validation, a pipeline step that failed, a generation run that ended without an accepted note."""
    BAD_INPUT = 2
    """Nothing was done: a malformed file, option value or name, a locked or missing store (also usage errors)."""
    INTERRUPTED = 130
    """Ctrl-C; rerun the same command to resume."""


class MedsynError(Exception):
    """A user-facing failure: bad input, a locked store, an unknown name.

    The message must fit on one line and name the file, line or field at fault.

    >>> str(MedsynError("bad weight", path="a.csv", line=3))
    'a.csv:3: bad weight'
    """

    exit_code: int = ExitCode.BAD_INPUT

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

    exit_code = ExitCode.FINDING


class ParameterError(InputError):
    """A bad argument of a library function, named as the library names it (``{max_attempts}`` in the message).

    The CLI renders the same error with its option names (:meth:`render`), so the library never names a flag.

    >>> e = ParameterError("{max_attempts} must be >= 1, got 0")
    >>> str(e), e.render(lambda p: "--" + p.replace("_", "-"))
    ('max_attempts must be >= 1, got 0', '--max-attempts must be >= 1, got 0')
    """

    _PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")

    def __init__(self, template: str) -> None:
        self.template = template
        self.params = tuple(dict.fromkeys(self._PLACEHOLDER.findall(template)))
        super().__init__(self.render(lambda p: p))

    def render(self, name: Callable[[str], str]) -> str:
        """The message with each ``{param}`` replaced by ``name(param)``."""
        return " ".join(self._PLACEHOLDER.sub(lambda m: name(m[1]), self.template).split())


class BackendError(MedsynError):
    """The backend cannot work at all (bad key, unknown model, unreachable endpoint): retrying cannot help."""
