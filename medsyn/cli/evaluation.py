"""``medsyn eval``: RuMedTop3 baseline, upsampling grid and note-quality report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from medsyn.atomic import check_output
from medsyn.cli.consoles import make_console
from medsyn.cli.options import path_of
from medsyn.errors import InputError

if TYPE_CHECKING:
    from medsyn.evaluation.data import NoteSet
    from medsyn.evaluation.upsampling import RunResult, Summary

app = typer.Typer(help="Evaluate synthetic notes: ICD-10 prediction with upsampling, quality and privacy.")
console = make_console(stderr=True)


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
    classifier: str = typer.Option("tfidf", help="tfidf (char n-grams, RuMedBench's) or vectors (navec + MLP)."),
    predictions: Path = typer.Option(
        None, parser=path_of("--predictions"), help="Write top-3 predictions per note here (JSONL)."
    ),
) -> None:
    """Train the char TF-IDF + LR baseline and print top-1 accuracy, Hit@3 and macro-F1 (x100)."""
    from medsyn.atomic import atomic_write_text
    from medsyn.evaluation.classifier import ClassifierConfig, evaluate
    from medsyn.evaluation.classifiers import make_classifier
    from medsyn.evaluation.data import default_dev, default_train, read_notes

    if solver not in ("sgd", "lbfgs"):
        raise InputError(f"--solver: expected sgd or lbfgs, got {solver!r}")
    if predictions is not None:
        check_output(predictions, folder=False, inputs=[p for p in (train, eval_file) if p], option="--predictions")
    tr = read_notes(train or default_train())
    ev = read_notes(eval_file or default_dev())
    cfg = ClassifierConfig(kind=classifier) if solver == "sgd" else ClassifierConfig.reference()  # type: ignore[arg-type]
    with console.status("fitting the classifier"):
        clf = make_classifier(cfg).fit(tr.texts, tr.codes, seed=seed)
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
    control: bool = typer.Option(
        True,
        help="Score each set beside its graph-only control (its requested symptoms as text) and report the "
        "difference: what the text adds.",
    ),
    requested: Path = typer.Option(
        None, help="Symptom sets the notes were prompted with, for sets without them; default: train_sampled.jsonl."
    ),
    classifier: str = typer.Option("tfidf", help="tfidf (char n-grams, RuMedBench's) or vectors (navec + MLP)."),
    out: Path = typer.Option(Path("reports/upsample"), parser=path_of("--out"), help="Report folder."),
) -> None:
    """Run the real x synthetic share grid over several seeds and write out/upsample.md with plots."""
    from medsyn.evaluation.classifier import ClassifierConfig
    from medsyn.evaluation.data import default_dev, default_synthetic, default_train, display_path, read_notes
    from medsyn.evaluation.report import UpsampleContext, write_upsample_data, write_upsample_report
    from medsyn.evaluation.upsampling import make_grid, rare_codes, summarise

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
    cfg = ClassifierConfig(kind=classifier, epochs=epochs)  # type: ignore[arg-type]  # checked by the config
    sets = _load_synthetic(
        list(synthetic or default_synthetic()), set(tr.codes), strict=strict_codes, include_rejected=include_rejected
    )
    warnings = [w for s in sets for w in s.warnings]
    control_notes: list[str] = []
    if control:
        sets, control_notes = _with_controls(sets, requested)
    missing = sorted(set(dv.codes) - set(tr.codes))
    if missing:
        warnings.insert(0, f"{dv.path}: codes absent from {tr.path}: {', '.join(missing)} (scored as misses)")
    _warn(warnings)
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
        classifier=cfg.describe(),
        share_of=share_of,
        rare=sorted(rare),
        rare_rule=f"train frequency ≤ the {rare_quantile:g} quantile of per-code train counts "
        f"({max(counts.values())} notes or fewer)",
        wall_s=wall,
        warnings=warnings,
        control_notes=control_notes,
    )
    path = write_upsample_report(out, results, summaries, ctx)
    write_upsample_data(out, results, summaries, ctx)
    _print_best(summaries)
    typer.echo(f"{len(results)} fits in {wall:.0f} s; report: {path}")


def _with_controls(sets: list[NoteSet], requested: Path | None) -> tuple[list[NoteSet], list[str]]:
    """Each set followed by its graph-only control; lists for the authors' sets from their sampled-symptom file."""
    from medsyn.evaluation.control import with_controls

    req, path = _read_requested(requested)
    return with_controls(sets, req, source=path.name)


def _read_requested(requested: Path | None) -> tuple[dict[str, list[tuple[str, ...]]], Path]:
    """The sampled symptom sets of ``--requested``, or of the shipped train_sampled.jsonl when it is there."""
    from medsyn.evaluation.data import default_requested, read_requested

    path = requested or default_requested()
    return (read_requested(path) if (requested is not None or path.is_file()) else {}), path


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
        adds = (
            ""
            if b.text_adds is None or b.rare_text_adds is None
            else f"; the text adds {b.text_adds[0]:+.2f} (rare {b.rare_text_adds[0]:+.2f}) over its bare lists"
        )
        typer.echo(
            f"{name}: best {b.point.label}: acc {b.accuracy[0]:.2f} (gain {b.gain[0]:+.2f}), "
            f"rare acc {b.rare_accuracy[0]:.2f} (gain {b.rare_gain[0]:+.2f}){adds}"
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
    jobs: int = typer.Option(
        1, help="Processes for the per-note scores, threads for the classifiers (the same figures, sooner)."
    ),
) -> None:
    """Diversity, length, symptom recall, copying and distinguishability of synthetic notes; writes out/quality.md."""
    import numpy as np
    from rich.progress import Progress

    from medsyn.evaluation.classifier import CodeClassifier
    from medsyn.evaluation.control import with_requested
    from medsyn.evaluation.data import default_synthetic, default_train, display_path, read_notes
    from medsyn.evaluation.quality import assess
    from medsyn.evaluation.report import write_quality_report

    if auc_max < 0:
        raise InputError("--auc-max: expected 0 or a positive number")
    if jobs < 1:
        raise InputError(f"--jobs: expected 1 or more, got {jobs}")
    tr = read_notes(train or default_train())
    sets = _load_synthetic(
        list(synthetic or default_synthetic()), set(tr.codes), strict=strict_codes, include_rejected=include_rejected
    )
    req, req_path = _read_requested(requested)
    notes: list[str] = [w for s in sets for w in s.warnings][:20]
    _warn(notes)
    sets, paired = with_requested(sets, req, source=req_path.name)
    notes += paired
    rng = np.random.default_rng(seed)
    results = []
    with Progress(console=console) as progress:
        task = progress.add_task("code-fidelity classifier (real train)", total=None)
        clf = CodeClassifier(jobs=jobs).fit(tr.texts, tr.codes, seed=seed)
        progress.remove_task(task)
        task = progress.add_task("note quality", total=len(sets))
        for s in sets:
            progress.update(task, description=f"note quality: {s.name}")
            results.append(assess(s, tr, rng, auc_max_per_class=auc_max, classifier=clf, jobs=jobs))
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


def _experiment_sets(
    synthetic: list[Path] | None, train: Path | None, dev: Path | None, *, control: bool, requested: Path | None
) -> tuple[NoteSet, NoteSet, list[NoteSet], list[str]]:
    """Train, dev, the synthetic sets (each followed by its graph-only control) and what the controls say."""
    from medsyn.evaluation.data import default_dev, default_synthetic, default_train, read_notes

    tr = read_notes(train or default_train())
    dv = read_notes(dev or default_dev())
    sets = _load_synthetic(list(synthetic or default_synthetic()), set(tr.codes), strict=False, include_rejected=False)
    _warn([w for s in sets for w in s.warnings])
    notes: list[str] = []
    if control:
        sets, notes = _with_controls(sets, requested)
    return tr, dv, sets, notes


def _outcome_progress(total: int, label: str) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    return progress, progress.add_task(label, total=total)


# The options `eval held-out-codes` and `eval synthetic-only` share: one declaration each.
_SyntheticOpt = Annotated[
    list[Path] | None, typer.Option(help="Synthetic note sets (repeat); default: the authors' three sets.")
]
_TrainOpt = Annotated[Path | None, typer.Option(help="Real training notes; default: RuMedTop3 train.")]
_DevOpt = Annotated[Path | None, typer.Option(help="Evaluation notes; default: RuMedTop3 dev.")]
_SeedsOpt = Annotated[str, typer.Option(help="Comma-separated seeds (draws and fits).")]
_ControlOpt = Annotated[
    bool, typer.Option(help="Run each set's graph-only control (its requested symptoms as text) beside it.")
]
_RequestedOpt = Annotated[
    Path | None, typer.Option(help="Sampled symptom sets for sets without them (train_sampled.jsonl).")
]
_ClassifierOpt = Annotated[str, typer.Option(help="tfidf or vectors.")]


@app.command("held-out-codes")
def held_out_codes_command(
    synthetic: _SyntheticOpt = None,
    train: _TrainOpt = None,
    dev: _DevOpt = None,
    seeds: _SeedsOpt = "0,1,2",
    codes: int = typer.Option(10, help="How many codes to remove from the real training set."),
    min_dev: int = typer.Option(5, help="A held-out code has at least this many dev notes."),
    min_notes: int = typer.Option(10, help="... and at least this many notes in every synthetic set."),
    per_code: int = typer.Option(30, help="At most this many notes added per held-out code (same for every set)."),
    choice_seed: int = typer.Option(0, help="Seed of the choice of codes."),
    control: _ControlOpt = True,
    requested: _RequestedOpt = None,
    classifier: _ClassifierOpt = "tfidf",
    out: Path = typer.Option(Path("reports/held-out-codes"), parser=path_of("--out"), help="Report folder."),
) -> None:
    """Remove every real train note of some codes, add synthetic notes for them only, score those codes on dev."""
    from medsyn.evaluation.classifier import ClassifierConfig
    from medsyn.evaluation.data import display_path
    from medsyn.evaluation.experiments import held_out_codes, summarise_outcomes
    from medsyn.evaluation.report import write_experiment_report

    if min(codes, min_dev, min_notes, per_code) < 1:
        raise InputError("--codes, --min-dev, --min-notes and --per-code must be at least 1")
    cfg = ClassifierConfig(kind=classifier)  # type: ignore[arg-type]  # checked by the config
    seed_list = _ints(seeds, "--seeds")
    tr, dv, sets, notes = _experiment_sets(synthetic, train, dev, control=control, requested=requested)
    progress, task = _outcome_progress(len(seed_list) * (len(sets) + 1), "held-out codes")
    with progress:
        chosen, counts, outcomes = held_out_codes(
            tr,
            dv,
            sets,
            seeds=seed_list,
            n_codes=codes,
            min_dev=min_dev,
            min_notes=min_notes,
            per_code=per_code,
            choice_seed=choice_seed,
            config=cfg,
            on_done=lambda o: progress.advance(task),
        )
    rows = summarise_outcomes(outcomes)
    intro = [
        f"Every real train note of {len(chosen)} codes is removed from `{display_path(tr.path)}`: "
        + ", ".join(f"{c} ({counts[c]} added)" for c in chosen)
        + f". Chosen with seed {choice_seed} among codes with {min_dev}+ dev notes and {min_notes}+ notes in every "
        "set. Each set adds its own notes of those codes only, the same number per code for every set; the reference "
        "adds as many real train notes. Without any of them those codes cannot be predicted (accuracy 0).",
        f"Scored on the held-out codes' notes of `{display_path(dv.path)}`; seeds {seeds}; classifier: "
        f"{cfg.describe()}. Mean ± std over seeds, x100.",
        *(f"- {n}" for n in notes),
    ]
    path = write_experiment_report(out, "Codes outside the real training set", intro, rows, stem="held_out_codes")
    _write_outcomes(out / "held_out_codes.json", outcomes)
    for r in rows:
        typer.echo(
            f"{r.set_name}: acc {r.accuracy[0]:.2f} ± {r.accuracy[1]:.2f}, hit@3 {r.hit3[0]:.2f} on held-out codes"
        )
    typer.echo(f"report: {path}")


@app.command("synthetic-only")
def synthetic_only_command(
    synthetic: _SyntheticOpt = None,
    train: _TrainOpt = None,
    dev: _DevOpt = None,
    seeds: _SeedsOpt = "0,1,2",
    control: _ControlOpt = True,
    requested: _RequestedOpt = None,
    classifier: _ClassifierOpt = "tfidf",
    out: Path = typer.Option(Path("reports/synthetic-only"), parser=path_of("--out"), help="Report folder."),
) -> None:
    """Train on a synthetic set alone, beside real notes with the same count per code; score its codes on dev."""
    from medsyn.evaluation.classifier import ClassifierConfig
    from medsyn.evaluation.data import display_path
    from medsyn.evaluation.experiments import summarise_outcomes, synthetic_only
    from medsyn.evaluation.report import write_experiment_report

    cfg = ClassifierConfig(kind=classifier)  # type: ignore[arg-type]  # checked by the config
    seed_list = _ints(seeds, "--seeds")
    tr, dv, sets, notes = _experiment_sets(synthetic, train, dev, control=control, requested=requested)
    total = len(seed_list) * (len(sets) + sum(s.control_of is None for s in sets))
    progress, task = _outcome_progress(total, "synthetic only")
    with progress:
        outcomes = synthetic_only(tr, dv, sets, seeds=seed_list, config=cfg, on_done=lambda o: progress.advance(task))
    rows = summarise_outcomes(outcomes)
    intro = [
        "Each set trains a classifier on its own; `<set>: real notes, same count` trains one on real train notes "
        f"of `{display_path(tr.path)}` with the same count per code (all there are where fewer). Both are scored on "
        f"the dev notes of the codes the set covers (`{display_path(dv.path)}`); seeds {seeds}; classifier: "
        f"{cfg.describe()}. Mean ± std over seeds, x100.",
        *(f"- {n}" for n in notes),
    ]
    path = write_experiment_report(out, "Synthetic-only training, like for like", intro, rows, stem="synthetic_only")
    _write_outcomes(out / "synthetic_only.json", outcomes)
    for r in rows:
        typer.echo(f"{r.set_name}: acc {r.accuracy[0]:.2f} ± {r.accuracy[1]:.2f} on its codes ({r.n_train:.0f} notes)")
    typer.echo(f"report: {path}")


def _write_outcomes(path: Path, outcomes: list[Any]) -> None:
    from dataclasses import asdict

    from medsyn.atomic import atomic_write_text

    atomic_write_text(path, json.dumps([asdict(o) for o in outcomes], ensure_ascii=False, indent=1) + "\n")


@app.command()
def privacy(
    synthetic: _SyntheticOpt = None,
    train: Path = typer.Option(None, help="Members: the real notes the generator saw; default: RuMedTop3 train."),
    dev: Path = typer.Option(None, help="Non-members: held-out real notes; default: RuMedTop3 dev."),
    seed: int = typer.Option(0, help="Seed of the balanced draw and the bootstrap."),
    bootstrap: int = typer.Option(1000, help="Bootstrap resamples per AUC interval."),
    rare_quantile: float = typer.Option(0.25, help="Rare codes: train frequency at or below this quantile."),
    goal_auc: float = typer.Option(0.55, help="A set fails when an attack's AUC on the whole draw is above this."),
    pii: bool = typer.Option(True, help="Scan for personal data (names, dates, phones, document numbers)."),
    include_rejected: bool = typer.Option(False, help="Use generate notes that the filter rejected, too."),
    canaries: Path | None = typer.Option(
        None, "--canaries", help="Canaries manifest (`medsyn ift --canaries K`): scan every set for its secrets."
    ),
    adapter: Path | None = typer.Option(
        None, "--adapter", help="The fine-tuned generator (LoRA adapter): each canary's exposure under it (bits)."
    ),
    candidates: int = typer.Option(1000, help="With --adapter: secrets each canary's secret is ranked among."),
    out: Path = typer.Option(Path("reports/privacy"), parser=path_of("--out"), help="Report folder."),
) -> None:
    """Membership inference from the synthetic set alone (attack AUC with bootstrap intervals, overall, rare codes
    and the real notes shown as examples) and a personal-data scan; writes out/privacy.md and privacy.json.

    With --canaries (and --adapter): the generator's canary exposure, and every set scanned for the secrets.

    Exits 1 when a set fails a goal (an AUC above --goal-auc, more personal data than the real notes, a canary's
    secret in a note), after writing the report."""
    import numpy as np

    from medsyn.evaluation.data import default_dev, default_synthetic, default_train, display_path, read_notes
    from medsyn.evaluation.privacy import PrivacyRun, assess_privacy, attach_canaries
    from medsyn.evaluation.privacy_report import write_privacy_report
    from medsyn.evaluation.upsampling import rare_codes

    _check_privacy_options(bootstrap, rare_quantile, goal_auc, adapter, canaries, candidates)
    planted = _read_canaries(canaries)
    tr = read_notes(train or default_train())
    dv = read_notes(dev or default_dev())
    sets = _load_synthetic(
        list(synthetic or default_synthetic()), set(tr.codes), strict=False, include_rejected=include_rejected
    )
    _warn([w for s in sets for w in s.warnings])
    rare = rare_codes(tr.codes, quantile=rare_quantile)
    counts = {c: tr.codes.count(c) for c in rare}
    start = time.perf_counter()
    with console.status("membership inference") as status:
        results, real = assess_privacy(
            sets,
            tr,
            dv,
            seed,
            rare=rare,
            n_boot=bootstrap,
            pii=pii,
            on_set=lambda name: status.update(f"membership inference and personal data: {name}"),
        )
    if planted is not None:
        exposed = _canary_exposure(adapter, planted, candidates, np.random.default_rng(seed))
        attach_canaries(results, sets, exposed, planted, adapter=None if adapter is None else str(adapter))
    run = PrivacyRun(
        results,
        real,
        display_path(tr.path),
        display_path(dv.path),
        sorted(rare),
        f"train frequency ≤ the {rare_quantile:g} quantile of per-code train counts ({max(counts.values())} notes "
        "or fewer)",
        seed,
        bootstrap,
        goal_auc,
    )
    path = write_privacy_report(out, run)
    _echo_privacy(run)
    typer.echo(f"{len(results)} set(s) in {time.perf_counter() - start:.0f} s; report: {path}")
    failures = run.failures()
    if failures:
        _warn(failures)
        raise typer.Exit(1)


def _check_privacy_options(
    bootstrap: int, rare_quantile: float, goal_auc: float, adapter: Path | None, canaries: Path | None, candidates: int
) -> None:
    if bootstrap < 10:
        raise InputError(f"--bootstrap: expected at least 10 resamples, got {bootstrap}")
    if not 0 < rare_quantile < 1 or not 0.5 <= goal_auc <= 1:
        raise InputError("--rare-quantile must lie in (0, 1) and --goal-auc in [0.5, 1]")
    if adapter is not None and canaries is None:
        raise InputError("--adapter needs --canaries MANIFEST (the canaries planted by `medsyn ift --canaries K`)")
    if candidates < 2:
        raise InputError(f"--candidates: expected at least 2, got {candidates}")


def _echo_privacy(run: Any) -> None:
    for r in run.results:
        a = r.auc_of("char")
        typer.echo(
            f"{r.name}: {r.n} notes, highest attack AUC {r.worst_auc:.3f}"
            + ("" if a is None else f" (char {a.auc:.3f}, 95% {a.low:.3f}–{a.high:.3f})")
            + ("" if r.pii is None else f", personal data in {100 * r.pii.rate:.2f}% of notes")
        )
    if run.real_pii is not None:
        typer.echo(f"real notes (dev): personal data in {100 * run.real_pii.rate:.2f}% of notes")


def _read_canaries(manifest: Path | None) -> list[Any] | None:
    from medsyn.training.canaries import read_manifest

    return None if manifest is None else read_manifest(manifest)


def _canary_exposure(adapter: Path | None, planted: list[Any], candidates: int, rng: Any) -> list[Any]:
    if adapter is None:
        return []
    from medsyn.evaluation.canaries import measure_exposure

    with console.status("canary exposure"):
        return measure_exposure(adapter, planted, n_candidates=candidates, rng=rng)


def _register_canaries() -> None:
    from medsyn.cli.canaries import register

    register(app)


_register_canaries()
