"""``medsyn eval``: RuMedTop3 baseline, upsampling grid and note-quality report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from medsyn.atomic import check_output
from medsyn.cli.options import path_of
from medsyn.errors import InputError

if TYPE_CHECKING:
    from medsyn.evaluation.data import NoteSet
    from medsyn.evaluation.upsampling import RunResult, Summary

app = typer.Typer(help="Evaluate synthetic notes: ICD-10 prediction with upsampling, quality and privacy.")
console = Console(stderr=True)


def _floats(raw: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated numbers, got {raw!r}") from None
    if not values or any(not 0 <= v <= 1 for v in values):
        raise InputError(f"{option}: expected shares between 0 and 1, got {raw!r}")
    return values


def _ints(raw: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated integers, got {raw!r}") from None
    if not values:
        raise InputError(f"{option}: give at least one value")
    return values


def _warn(lines: list[str], limit: int = 10) -> None:
    for w in lines[:limit]:
        console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    if len(lines) > limit:
        console.print(f"[yellow]warning:[/] … {len(lines) - limit} more (listed in the report)", highlight=False)


def _load_synthetic(paths: list[Path], known: set[str], *, strict: bool, include_rejected: bool):  # type: ignore[no-untyped-def]
    from medsyn.evaluation.data import read_notes, restrict_codes

    sets = []
    for p in paths:
        ns = restrict_codes(read_notes(p, accepted_only=not include_rejected), known, strict=strict)
        if any(s.name == ns.name for s in sets):
            ns.name = f"{ns.name}_{len(sets)}"
        sets.append(ns)
    return sets


@app.command()
def baseline(
    train: Path = typer.Option(None, help="Training notes (JSONL); default: RuMedTop3 train."),
    eval_file: Path = typer.Option(None, "--eval", help="Notes to score (JSONL); default: RuMedTop3 dev."),
    solver: str = typer.Option("sgd", help="sgd (fast, default) or lbfgs (RuMedBench's exact setting, slow)."),
    seed: int = typer.Option(0, help="Seed of the SGD shuffling."),
    predictions: Path = typer.Option(
        None, parser=path_of("--predictions"), help="Write top-3 predictions per note here (JSONL)."
    ),
) -> None:
    """Train the char TF-IDF + LR baseline and print top-1 accuracy, Hit@3 and macro-F1 (x100)."""
    from medsyn.atomic import atomic_write_text
    from medsyn.evaluation.classifier import ClassifierConfig, CodeClassifier, evaluate
    from medsyn.evaluation.data import default_dev, default_train, read_notes

    if solver not in ("sgd", "lbfgs"):
        raise InputError(f"--solver: expected sgd or lbfgs, got {solver!r}")
    if predictions is not None:
        check_output(predictions, folder=False, inputs=[p for p in (train, eval_file) if p], option="--predictions")
    tr = read_notes(train or default_train())
    ev = read_notes(eval_file or default_dev())
    cfg = ClassifierConfig() if solver == "sgd" else ClassifierConfig.reference()
    with console.status("fitting the classifier"):
        clf = CodeClassifier(cfg).fit(tr.texts, tr.codes, seed=seed)
        scores, ranked = evaluate(clf, ev.texts, ev.codes)
    if scores.unseen:
        missing = sum(scores.per_code_n[c] for c in scores.unseen)
        _warn(
            [f"{ev.path}: codes absent from {tr.path}: {', '.join(scores.unseen)} ({missing} notes, scored as misses)"]
        )
    if predictions is not None:
        rows = [
            json.dumps({"idx": n.id, "code": n.code, "prediction": r}, ensure_ascii=False)
            for n, r in zip(ev.notes, ranked, strict=True)
        ]
        atomic_write_text(predictions, "\n".join(rows) + "\n")
    typer.echo(
        f"{ev.path.name}: n={scores.n} acc={scores.accuracy:.2f} hit@3={scores.hit3:.2f} "
        f"macro-F1={scores.macro_f1:.2f} (trained on {len(tr.notes)} notes of {tr.path.name})"
    )


@app.command()
def upsample(
    synthetic: list[Path] = typer.Option(None, help="Synthetic note sets (repeat); default: the authors' three sets."),
    train: Path = typer.Option(None, help="Real training notes; default: RuMedTop3 train."),
    dev: Path = typer.Option(None, help="Evaluation notes; default: RuMedTop3 dev."),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds."),
    real_shares: str = typer.Option("0.5,0.75,1", help="Shares of real train kept, by code."),
    syn_shares: str = typer.Option("0,0.25,0.5,1", help="Synthetic notes added, as a share (see --share-of)."),
    share_of: str = typer.Option("real", help="real: share of the kept real notes; set: share of the synthetic set."),
    no_synthetic_only: bool = typer.Option(False, "--no-synthetic-only", help="Skip the synthetic-only runs."),
    rare_quantile: float = typer.Option(0.25, help="Rare codes: train frequency at or below this quantile."),
    epochs: int = typer.Option(5, help="SGD epochs per fit."),
    jobs: int = typer.Option(1, help="Fits run in parallel."),
    strict_codes: bool = typer.Option(False, help="Fail on a synthetic note whose code is not in train."),
    include_rejected: bool = typer.Option(False, help="Use generate notes that the filter rejected, too."),
    out: Path = typer.Option(Path("reports/upsample"), parser=path_of("--out"), help="Report folder."),
) -> None:
    """Run the real x synthetic share grid over several seeds and write out/upsample.md with plots."""
    from medsyn.atomic import atomic_write_text
    from medsyn.evaluation.classifier import ClassifierConfig
    from medsyn.evaluation.data import default_dev, default_synthetic, default_train, display_path, read_notes
    from medsyn.evaluation.report import UpsampleContext, write_upsample_report
    from medsyn.evaluation.upsampling import make_grid, rare_codes, result_rows, summarise

    if share_of not in ("real", "set"):
        raise InputError(f"--share-of: expected real or set, got {share_of!r}")
    if not 0 < rare_quantile < 1:
        raise InputError(f"--rare-quantile: expected a number between 0 and 1, got {rare_quantile}")
    if epochs < 1 or jobs < 1:
        raise InputError("--epochs and --jobs must be at least 1")
    seed_list = _ints(seeds, "--seeds")
    grid = make_grid(
        _floats(real_shares, "--real-shares"), _floats(syn_shares, "--syn-shares"), synthetic_only=not no_synthetic_only
    )
    tr = read_notes(train or default_train())
    dv = read_notes(dev or default_dev())
    sets = _load_synthetic(
        list(synthetic or default_synthetic()), set(tr.codes), strict=strict_codes, include_rejected=include_rejected
    )
    warnings = [w for s in sets for w in s.warnings]
    missing = sorted(set(dv.codes) - set(tr.codes))
    if missing:
        warnings.insert(0, f"{dv.path}: codes absent from {tr.path}: {', '.join(missing)} (scored as misses)")
    _warn(warnings)
    cfg = ClassifierConfig(epochs=epochs)
    start = time.perf_counter()
    results = _grid_with_progress(tr, dv, sets, seeds=seed_list, grid=grid, share_of=share_of, config=cfg, jobs=jobs)
    wall = time.perf_counter() - start
    rare = rare_codes(tr.codes, quantile=rare_quantile)
    counts = {c: tr.codes.count(c) for c in rare}
    summaries = summarise(results, rare)
    ctx = UpsampleContext(
        train=display_path(tr.path),
        dev=display_path(dv.path),
        synthetic=[display_path(s.path) for s in sets],
        seeds=seed_list,
        classifier=f"char TF-IDF {cfg.ngram_range[0]}..{cfg.ngram_range[1]} (min_df={cfg.min_df}) + one-vs-rest "
        f"L2 log-loss, C={cfg.C:g}, {cfg.solver} ({cfg.epochs} epochs)",
        share_of=share_of,
        rare=sorted(rare),
        rare_rule=f"train frequency ≤ the {rare_quantile:g} quantile of per-code train counts "
        f"({max(counts.values())} notes or fewer)",
        wall_s=wall,
        warnings=warnings,
    )
    path = write_upsample_report(out, results, summaries, ctx)
    raw = result_rows(results, rare)
    atomic_write_text(out / "results.json", json.dumps(raw, ensure_ascii=False, indent=1) + "\n")
    _print_best(summaries)
    typer.echo(f"{len(results)} fits in {wall:.0f} s; report: {path}")


def _grid_with_progress(train: NoteSet, dev: NoteSet, sets: list[NoteSet], **grid_options: Any) -> list[RunResult]:
    """:func:`medsyn.evaluation.upsampling.run_grid` under a progress bar of fits."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from medsyn.evaluation.upsampling import plan, run_grid

    planned = plan(
        train, sets, seeds=grid_options["seeds"], grid=grid_options["grid"], share_of=grid_options["share_of"]
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("upsampling grid", total=len(planned))

        def done(r: RunResult) -> None:
            progress.update(task, advance=1, description=f"{r.set_name}: {r.point.label}, seed {r.seed}")

        return run_grid(train, dev, sets, on_done=done, **grid_options)


def _print_best(summaries: list[Summary]) -> None:
    """Real-only accuracy, then each set's best grid point with its gains."""
    from medsyn.evaluation.upsampling import GridPoint, best_per_set

    base = [s for s in summaries if s.point == GridPoint(1.0, 0.0)]
    if base:
        typer.echo(f"real only: acc {base[0].accuracy[0]:.2f}, rare acc {base[0].rare_accuracy[0]:.2f}")
    for name, b in best_per_set(summaries).items():
        typer.echo(
            f"{name}: best {b.point.label}: acc {b.accuracy[0]:.2f} (gain {b.gain[0]:+.2f}), "
            f"rare acc {b.rare_accuracy[0]:.2f} (gain {b.rare_gain[0]:+.2f})"
        )


@app.command()
def quality(
    synthetic: list[Path] = typer.Option(None, help="Synthetic note sets (repeat); default: the authors' three sets."),
    train: Path = typer.Option(None, help="Real notes to compare with; default: RuMedTop3 train."),
    requested: Path = typer.Option(
        None, help="Symptom sets the notes were prompted with, for sets without them; default: train_sampled.jsonl."
    ),
    seed: int = typer.Option(0, help="Seed for sampling and cross-validation."),
    auc_max: int = typer.Option(0, help="Cap on notes per class for the AUC (0: no cap)."),
    strict_codes: bool = typer.Option(False, help="Fail on a synthetic note whose code is not in train."),
    include_rejected: bool = typer.Option(False, help="Use generate notes that the filter rejected, too."),
    out: Path = typer.Option(Path("reports/quality"), parser=path_of("--out"), help="Report folder."),
) -> None:
    """Diversity, length, symptom recall, copying and distinguishability of synthetic notes; writes out/quality.md."""
    import numpy as np
    from rich.progress import Progress

    from medsyn.evaluation.classifier import CodeClassifier
    from medsyn.evaluation.data import (
        attach_requested,
        default_requested,
        default_synthetic,
        default_train,
        display_path,
        read_notes,
    )
    from medsyn.evaluation.data import read_requested as load_requested
    from medsyn.evaluation.quality import assess
    from medsyn.evaluation.report import write_quality_report

    if auc_max < 0:
        raise InputError("--auc-max: expected 0 or a positive number")
    tr = read_notes(train or default_train())
    sets = _load_synthetic(
        list(synthetic or default_synthetic()), set(tr.codes), strict=strict_codes, include_rejected=include_rejected
    )
    req_path = requested or default_requested()
    req = load_requested(req_path) if (requested is not None or req_path.is_file()) else {}
    notes: list[str] = [w for s in sets for w in s.warnings][:20]
    _warn(notes)
    rng = np.random.default_rng(seed)
    results = []
    with Progress(console=console) as progress:
        task = progress.add_task("code-fidelity classifier (real train)", total=None)
        clf = CodeClassifier().fit(tr.texts, tr.codes, seed=seed)
        progress.remove_task(task)
        task = progress.add_task("note quality", total=len(sets))
        for s in sets:
            if req and not any(n.requested for n in s.notes):
                s, paired = attach_requested(s, req)
                if paired:
                    notes.append(f"{s.name}: requested symptoms paired by rank within code from `{req_path.name}`")
            progress.update(task, description=f"note quality: {s.name}")
            results.append(assess(s, tr, rng, auc_max_per_class=auc_max, classifier=clf))
            progress.advance(task)
    path = write_quality_report(out, results, train=display_path(tr.path), notes=notes)
    for q in results:
        typer.echo(
            f"{q.name}: AUC {q.auc[0]:.3f}, exact copies {100 * q.exact_train:.2f}%, "
            f"near-copies {100 * q.near_rate('train'):.2f}%"
            + ("" if q.fidelity is None else f", code fidelity {100 * q.fidelity[0]:.1f}% / {100 * q.fidelity[1]:.1f}%")
            + ("" if q.accept_rate is None else f", accepted {100 * q.accept_rate:.1f}%")
        )
    typer.echo(f"report: {path}")
