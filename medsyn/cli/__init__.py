"""The ``medsyn`` command line: a thin layer over the library API.

Each command group lives in its own module and registers a Typer app here.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

import typer
from rich.markup import escape

from medsyn.cli.consoles import make_console
from medsyn.errors import ExitCode, MedsynError, ParameterError

err_console = make_console(stderr=True)

app = typer.Typer(
    name="medsyn",
    help="MedSyn: synthetic clinical notes from a Medical Knowledge Graph and LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("medsyn")
        except PackageNotFoundError:  # a checkout on PYTHONPATH, never installed
            number = "unknown (not installed)"
        print(f"medsyn {number}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print medsyn's version and exit."
    ),
) -> None:
    """MedSyn: synthetic clinical notes from a Medical Knowledge Graph and LLMs."""


# (module, attribute, group name or None for top-level commands). A module registers either a sub-app
# (`app`) or top-level commands through `register(app)`.
_GROUPS: list[tuple[str, str | None]] = [
    ("medsyn.cli.kg", "kg"),
    ("medsyn.cli.sampling", None),
    ("medsyn.cli.generation", None),
    ("medsyn.cli.backends", None),
    ("medsyn.cli.sharing", None),
    ("medsyn.cli.training", None),
    ("medsyn.cli.evaluation", "eval"),
    ("medsyn.cli.server", None),
    ("medsyn.cli.curation", "onto"),
    ("medsyn.cli.audit", "audit"),
    ("medsyn.cli.pipeline", None),
]

for _module, _group in _GROUPS:
    _mod = import_module(_module)
    if _group is not None:
        app.add_typer(_mod.app, name=_group)
    else:
        _mod.register(app)


def invoke(command: Any, args: list[str] | None = None) -> int:
    """Run ``command`` (the click command of :data:`app`) on ``args`` and return its exit status.

    Typer returns the code of a ``typer.Exit`` instead of exiting when it does not own the process
    (``standalone_mode=False``, needed so that errors reach :func:`main`); this returns that code. A command's
    return value is ignored: commands report through their output and ``typer.Exit``.
    """
    result = command.main(args, prog_name="medsyn", standalone_mode=False)
    return result if isinstance(result, int) and not isinstance(result, bool) else ExitCode.OK


def option_names(argv: list[str]) -> dict[str, str]:
    """``{parameter: option}`` of the command ``argv`` names: ``generate`` -> ``{"max_attempts": "--max-attempts"}``.

    Library parameters an option spells differently are listed in :data:`_ALIASES`.
    """
    node: Any = typer.main.get_command(app)
    for token in argv:
        sub = node.get_command(None, token) if hasattr(node, "get_command") else None
        if sub is None:
            break
        node = sub
    names = {p.name: max(p.opts, key=len) for p in getattr(node, "params", []) if p.name and p.opts[0].startswith("-")}
    names.update({lib: names[opt] for lib, opt in _ALIASES.items() if opt in names})
    return names


_ALIASES = {"overrides": "override"}
"""Library parameter -> the command's parameter for the same value, where the names differ."""


def main() -> None:
    """Entry point: user errors become one ``error:`` line; the exit status is one of :class:`ExitCode`."""
    try:
        code = invoke(typer.main.get_command(app))
    except ParameterError as exc:
        options = option_names(sys.argv[1:])
        _error(exc.render(lambda p: options.get(p, p)))  # a parameter the command has no option for keeps its name
        sys.exit(exc.exit_code)
    except MedsynError as exc:
        _error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit:
        raise
    except Exception as exc:
        # Usage errors of Typer's (vendored) click: one line like every other bad input, with where to look.
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # a bare `medsyn kg`: the help is the answer
            else:
                _error(_usage_line(exc))
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            if isinstance(exc.__context__, KeyboardInterrupt):
                _interrupted()
            sys.exit(ExitCode.FINDING)
        raise
    if code == ExitCode.INTERRUPTED:  # Typer turns Ctrl-C into a silent exit 130: say what happened
        _interrupted()
    sys.exit(code)


def _interrupted() -> None:
    err_console.print("interrupted: rerun the same command to resume", style="yellow", highlight=False)
    sys.exit(ExitCode.INTERRUPTED)


def _usage_line(exc: Any) -> str:
    """click's usage error as one line: its message and the command's --help (click prints usage, hint, error)."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see {ctx.command_path} --help)" if ctx is not None and getattr(ctx, "command_path", "") else ""
    return " ".join(str(exc.format_message()).split()) + where


def _error(message: str) -> None:
    err_console.print("[bold red]error:[/] " + escape(message), highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
