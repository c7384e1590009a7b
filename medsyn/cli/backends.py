"""``medsyn backends``: every generation backend with its options, their types, defaults and help."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from medsyn.cli.consoles import make_console
from medsyn.errors import ExitCode

if TYPE_CHECKING:
    from rich.table import Table

console = make_console()


def backends_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON on stdout.")] = False,
) -> None:
    """List the backends `generate --backend` takes, with the options `--option KEY=VALUE` sets (exit 1 when an
    installed plugin cannot be loaded)."""
    from medsyn.generation.backends import backend_catalog

    rows = backend_catalog()
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, default=str))
    else:
        console.print(_table(rows))
    if any("error" in row for row in rows):
        raise typer.Exit(ExitCode.FINDING)


def _table(rows: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(title="Backends (generate --backend NAME --option KEY=VALUE)", show_lines=False)
    for column in ("backend", "option", "type", "default", "help"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if "error" in row:
            table.add_row(row["name"], "", "", "", f"[red]{escape(row['error'])}[/]", end_section=True)
            continue
        about = f"{row['origin']}; default template {row['default_template'] or '(the run default)'}"
        table.add_row(row["name"], "", "", "", escape(f"{row['summary']} ({about})"))
        for i, o in enumerate(row["options"]):
            default = "required" if o["required"] else repr(o["default"])
            cells = (o["name"], o["type"], default, o["help"])
            table.add_row("", *map(escape, cells), end_section=i == len(row["options"]) - 1)
    return table


def register(app: typer.Typer) -> None:
    app.command("backends")(backends_command)
