"""The ``medsyn`` command line: a thin layer over the library API.

Each command group lives in its own module and registers a Typer app here.
"""

from __future__ import annotations

import sys
from importlib import import_module

import typer
from rich.console import Console
from rich.markup import escape

from medsyn.errors import MedsynError

err_console = Console(stderr=True)

app = typer.Typer(
    name="medsyn",
    help="MedSyn: synthetic clinical notes from a Medical Knowledge Graph and LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module, attribute, group name or None for top-level commands). A module registers either a sub-app
# (`app`) or top-level commands through `register(app)`.
_GROUPS: list[tuple[str, str | None]] = [
    ("medsyn.cli.kg", "kg"),
    ("medsyn.cli.sample", None),
    ("medsyn.cli.generate", None),
    ("medsyn.cli.finetune", None),
    ("medsyn.cli.evaluate", "eval"),
    ("medsyn.cli.serve", None),
    ("medsyn.cli.onto", "onto"),
    ("medsyn.cli.audit", "audit"),
    ("medsyn.cli.pipeline", None),
]

for _module, _group in _GROUPS:
    try:
        _mod = import_module(_module)
    except ModuleNotFoundError as _exc:
        if _exc.name != _module:
            raise
        continue
    if _group is not None:
        app.add_typer(_mod.app, name=_group)
    else:
        _mod.register(app)


def main() -> None:
    """Entry point: user errors become one ``error:`` line and a non-zero exit, never a traceback."""
    try:
        app(standalone_mode=False)
    except MedsynError as exc:
        err_console.print("[bold red]error:[/] " + escape(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]; rerun the same command to resume")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        # Usage errors of Typer's (vendored) click carry their own message and exit code.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
