"""``medsyn eval canaries``: canary exposure of a fine-tuned generator and a secret scan of its notes."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from medsyn.cli.consoles import make_console
from medsyn.cli.options import path_of
from medsyn.errors import ExitCode, InputError

console = make_console()


def canaries(
    manifest: Path = typer.Option(
        ..., "--canaries", help="Canaries manifest (written by `medsyn ift --canaries K` beside the dataset)."
    ),
    adapter: Path | None = typer.Option(None, "--adapter", help="LoRA adapter (from `medsyn finetune`) to measure."),
    base: str | None = typer.Option(
        None, "--base", help="Base model (default: the adapter's). Without --adapter: measure the base (a control)."
    ),
    notes: list[Path] = typer.Option(
        None, "--notes", help="Generated notes to scan for secrets: a generate run, an export or a JSONL (repeat)."
    ),
    candidates: int = typer.Option(1000, "--candidates", help="Secrets each canary's secret is ranked among."),
    seed: int = typer.Option(0, "--seed", help="Seed of the candidate secrets."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:1... (default: cuda if present)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Candidates scored per forward pass."),
    fail_exposure: float | None = typer.Option(
        None, "--fail-exposure", help="Also a finding (exit 1): a canary exposed by at least this many bits."
    ),
    out: Path = typer.Option(
        Path("canaries-report.json"), "--out", parser=path_of("--out"), help="JSON report to write."
    ),
) -> None:
    """Rank each canary's secret among random candidates (exposure, bits) and scan notes for the secrets.

    Exit 1 when a generated note holds a canary's secret (or an exposure reaches --fail-exposure)."""
    import json

    import numpy as np

    from medsyn.atomic import atomic_write_text, check_output
    from medsyn.evaluation import canaries as cn
    from medsyn.training.canaries import read_manifest

    check_output(out, folder=False, inputs=[manifest, *(notes or [])])
    if candidates < 2 or batch_size < 1:
        raise InputError("--candidates: expected at least 2; --batch-size: expected a positive integer")
    planted = read_manifest(manifest)
    texts = cn.note_texts(notes) if notes else None
    exposed: list[cn.Exposure] = []
    if adapter is not None or base is not None:
        rng = np.random.default_rng(seed)
        exposed = cn.measure_exposure(
            adapter, planted, base=base, n_candidates=candidates, rng=rng, device=device, batch_size=batch_size
        )
    elif texts is None:
        raise InputError("nothing to do: give --adapter (or --base) to measure exposure, or --notes to scan")
    hits = cn.scan_secrets(texts or [], planted)
    settings = {
        "canaries": str(manifest),
        "adapter": str(adapter) if adapter else None,
        "base": base,
        "notes": [str(p) for p in notes or []],
        "candidates": candidates,
        "seed": seed,
    }
    rep = cn.report(exposed, hits, scanned=len(texts) if texts is not None else None, settings=settings,
                    fail_exposure=fail_exposure)  # fmt: skip
    atomic_write_text(out, json.dumps(rep, ensure_ascii=False, indent=2) + "\n")
    _print(rep)
    console.print(f"report: {out}", highlight=False, soft_wrap=True)
    if rep["findings"]["secrets_in_notes"] or rep["findings"]["exposure_over_threshold"]:
        raise typer.Exit(ExitCode.FINDING)


def _print(rep: dict) -> None:  # type: ignore[type-arg]
    if rep["exposure"]:
        table = Table(title="Canary exposure (bits)")
        for col in ("canary", "secret", "rank", "candidates", "exposure", "max"):
            table.add_column(col, justify="left" if col in ("canary", "secret") else "right")
        for e in rep["exposure"]:
            table.add_row(e["canary"], e["secret"], str(e["rank"]), str(e["candidates"]), f"{e['exposure']:.2f}",
                          f"{e['max_exposure']:.2f}")  # fmt: skip
        console.print(table)
    if rep["notes_scanned"] is not None:
        hits = rep["secret_hits"]
        console.print(
            f"notes scanned: {rep['notes_scanned']}; canary secrets found: {len(hits)}", highlight=False, soft_wrap=True
        )
        for h in hits[:20]:
            console.print(
                f"  {h['canary']} ({h['secret']}) in {h['where']} (note {h['note_id']})",
                highlight=False,
                soft_wrap=True,
            )
    over = rep["findings"]["exposure_over_threshold"]
    if over:
        console.print(f"exposure at or over --fail-exposure: {', '.join(over)}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("canaries")(canaries)
