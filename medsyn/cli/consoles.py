"""The one place the CLI's rich consoles are made.

Lines are soft-wrapped: rich would otherwise break a long line at the console's width (80 columns when output goes
to a pipe or a file), cutting a path or an id in two where a user or a script needs it whole. Tables still fit the
width.
"""

from __future__ import annotations

from rich.console import Console


def make_console(*, stderr: bool = False) -> Console:
    return Console(stderr=stderr, soft_wrap=True)
