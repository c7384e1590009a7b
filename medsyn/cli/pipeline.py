"""``medsyn run PIPELINE.toml``: run a whole pipeline of commands from a config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.rule import Rule

from medsyn.cli.consoles import make_console
from medsyn.errors import ExitCode, MedsynError

console = make_console(stderr=True)


def run_command(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline TOML file (see pipelines/).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the commands without running them.")] = False,
) -> None:
    """Run every step of a pipeline file in order; rerun it to resume (finished steps are skipped or resume).

    The first step that fails stops the run, which exits with that step's status.
    """
    from medsyn.cli import app, invoke
    from medsyn.pipeline import format_args, load_pipeline, plan_pipeline

    root = typer.main.get_command(app)
    planned = plan_pipeline(root, load_pipeline(pipeline), source=str(pipeline))
    findings: list[str] = []
    for i, (step, args) in enumerate(planned, 1):
        console.print(Rule(f"step {i}/{len(planned)}: {step.title}"))
        console.print(format_args(args), style="dim", highlight=False, soft_wrap=True)
        if step.skip_if_exists and Path(step.skip_if_exists).exists():
            console.print(f"[green]skipped[/]: {step.skip_if_exists} exists")
            continue
        if dry_run:
            continue
        failed = f"step {i}/{len(planned)} ({step.title}) failed"
        try:
            code = invoke(root, args)
        except MedsynError:
            console.print(f"[red]{failed}[/]; the steps after it did not run", highlight=False)
            raise
        if code == ExitCode.FINDING and step.allow_finding:
            findings.append(f"step {i}/{len(planned)} ({step.title})")
            console.print(f"[yellow]step {i} reported a finding (exit 1)[/]; allow_finding is set, so the run goes on")
            continue
        if code != ExitCode.OK:
            console.print(f"[red]{failed}[/] with exit status {code}; the steps after it did not run", highlight=False)
            raise typer.Exit(code)
    if findings:
        console.print(Rule("pipeline done, with findings"))
        console.print(f"[yellow]findings in {', '.join(findings)}[/]", highlight=False)
        raise typer.Exit(ExitCode.FINDING)
    console.print(Rule("pipeline done"))


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
