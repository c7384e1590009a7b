"""The progress line of long commands that have no bar of their own (``kg validate``, ``audit sources``, ``ift``).

On stderr, so that a command's output on stdout (JSON, a table) stays clean; a terminal sees it live, a pipe or a
log gets its last state once, at the end; a command that fails shows only its error line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from medsyn.cli.consoles import make_console

Step = Callable[[str], None]
"""Called as each step starts, with what it does: the previous step is then done."""


@contextlib.contextmanager
def steps(command: str, total: int | None) -> Iterator[Step]:
    """``command  k/total  what runs now  elapsed`` (a spinner when ``total`` is None: one step of unknown length)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [TextColumn(f"[bold]{command}[/]")]
    columns += [BarColumn(), MofNCompleteColumn()] if total is not None else [SpinnerColumn()]
    with Progress(
        *columns, TextColumn("{task.description}"), TimeElapsedColumn(), console=make_console(stderr=True)
    ) as bar:
        task = bar.add_task("starting", total=total)
        started = False

        def step(label: str) -> None:
            nonlocal started
            if started:
                bar.advance(task)
            started = True
            bar.update(task, description=label)

        try:
            yield step
        except BaseException:
            bar.live.transient = True  # the error's one line follows: a half-done bar would only sit above it
            raise
        bar.update(task, completed=total or 1, total=total or 1, description="done")
