"""Markdown reports with PNG figures for the upsampling grid and the note-quality check.

Figures are rendered with matplotlib's Agg backend into memory and written atomically, like the Markdown.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsyn.atomic import atomic_write_bytes, atomic_write_text
from medsyn.errors import ParameterError
from medsyn.evaluation.experiments import Row
from medsyn.evaluation.quality import NEAR_DUPLICATE, Quality
from medsyn.evaluation.upsampling import (
    BASELINE,
    REAL,
    RunResult,
    Summary,
    best_per_set,
    per_code_gain,
    result_rows,
    text_adds,
)


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (reports are written headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> None:
    """The figure as a PNG at ``path``, written atomically, and closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def pm(value: tuple[float, float], digits: int = 2) -> str:
    """``mean ± std``; a lone mean when std is zero or undefined.

    >>> pm((49.5, 0.25)), pm((1.0, 0.0))
    ('49.50 ± 0.25', '1.00')
    """
    mean, std = value
    if math.isnan(mean):
        return "–"
    if not std or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table.

    >>> print(markdown_table(["a", "b"], [["1", "2"]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


@dataclass(slots=True)
class UpsampleContext:
    """What the report states about how the grid was run."""

    train: str
    dev: str
    synthetic: list[str]
    seeds: list[int]
    classifier: str
    share_of: str
    rare: list[str]
    rare_rule: str
    wall_s: float
    warnings: list[str] = field(default_factory=list)
    control_notes: list[str] = field(default_factory=list)


def _plot_accuracy(summaries: Sequence[Summary], path: Path) -> None:
    plt = pyplot()
    names = [n for n in dict.fromkeys(s.set_name for s in summaries) if n != REAL]
    real_rows = [s for s in summaries if s.set_name == REAL]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 3.6), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names or [REAL], strict=False):
        rows = real_rows + [s for s in summaries if s.set_name == name]
        for r in sorted({s.point.real_share for s in rows if not s.point.synthetic_only}):
            pts = sorted((s for s in rows if s.point.real_share == r), key=lambda s: s.point.syn_share)
            x = [s.point.syn_share for s in pts]
            y = np.array([s.accuracy[0] for s in pts])
            e = np.array([s.accuracy[1] for s in pts])
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=f"real {r:g}")
        only = [s for s in rows if s.point.synthetic_only]
        if only:
            ax.axhline(only[0].accuracy[0], color="grey", ls="--", label="synthetic only")
        ax.set_title(name)
        ax.set_xlabel("synthetic share")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("dev top-1 accuracy, %")
    axes[0][0].legend(fontsize=8)
    save_figure(fig, path)


def _plot_code_gains(gains: dict[str, float], rare: set[str], title: str, path: Path) -> None:
    plt = pyplot()
    codes = sorted(gains, key=lambda c: gains[c])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.11 * len(codes)), 3.6))
    colors = ["tab:red" if c in rare else "tab:blue" for c in codes]
    ax.bar(range(len(codes)), [gains[c] for c in codes], color=colors)
    ax.set_xticks(range(len(codes)), codes, rotation=90, fontsize=5)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("dev recall gain, points")
    ax.set_title(title + " (red: rare codes)")
    save_figure(fig, path)


TEXT_ADDS_FILE = "text_adds.json"


def text_adds_rows(summaries: Sequence[Summary]) -> list[dict[str, Any]]:
    """One JSON row per (set, point) that ran beside its graph-only control: what ``medsyn export --evaluation``
    puts in a dataset card."""
    twin_of = {(s.control_of, s.point): s for s in summaries if s.control_of}
    return [
        {
            "set": s.set_name,
            "mix": s.point.label,
            "seeds": s.seeds,
            "gain": list(s.gain),
            "control_gain": list(twin_of[(s.set_name, s.point)].gain),
            "text_adds": list(s.text_adds),
            "rare_gain": list(s.rare_gain),
            "control_rare_gain": list(twin_of[(s.set_name, s.point)].rare_gain),
            "rare_text_adds": list(s.rare_text_adds or (math.nan, math.nan)),
        }
        for s in summaries
        if s.text_adds is not None and (s.set_name, s.point) in twin_of
    ]


def _text_adds_section(results: Sequence[RunResult], summaries: Sequence[Summary], ctx: UpsampleContext) -> list[str]:
    """The graph-only control: each set against its own requested symptoms as text, per point and per seed."""
    rows = [s for s in summaries if s.text_adds is not None]
    if not rows and not ctx.control_notes:
        return []
    lines = [
        "## What the text adds over the graph",
        "",
        "Each set is run beside its graph-only control (`<set>:lists`): the same samples' requested symptoms joined "
        'by ", " as the note text, with the same codes, counts, drawn notes and fit seeds. *Text adds* = set minus '
        "control, paired by seed; a negative figure means the model's prose costs what the graph gave.",
        "",
    ]
    lines += [f"- {n}" for n in ctx.control_notes]
    lines.append("")
    if not rows:
        return lines
    rare = set(ctx.rare)
    seeds: dict[tuple[str, str], str] = {}
    for s in rows:
        runs = [r for r in results if r.set_name == s.set_name and r.point == s.point]
        twins = [r for r in results if r.control_of == s.set_name and r.point == s.point]
        seeds[s.set_name, s.point.label] = " / ".join(f"{a:+.2f} ({b:+.2f})" for a, b in text_adds(runs, twins, rare))
    table = text_adds_rows(summaries)  # all of them: a set's row needs its control's summary
    return [*lines, text_adds_table(table, [seeds[r["set"], r["mix"]] for r in table]), ""]


def text_adds_table(rows: Sequence[dict[str, Any]], per_seed: Sequence[str] | None = None) -> str:
    """The graph-only control as a Markdown table, from :func:`text_adds_rows` (the report's and the card's)."""

    def signed(v: Sequence[float]) -> str:
        return f"{v[0]:+.2f} ± {v[1]:.2f}"

    header = ["set", "mix", "gain", "control's gain", "text adds", "rare gain", "control's rare gain"]
    header += ["text adds, rare"] + (["per seed: overall (rare)"] if per_seed is not None else [])
    table = [
        [r["set"], r["mix"]]
        + [signed(r[k]) for k in ("gain", "control_gain", "text_adds", "rare_gain", "control_rare_gain")]
        + [signed(r["rare_text_adds"])]
        + ([per_seed[i]] if per_seed is not None else [])
        for i, r in enumerate(rows)
    ]
    return markdown_table(header, table)


def write_upsample_data(
    out: Path, results: Sequence[RunResult], summaries: Sequence[Summary], ctx: UpsampleContext
) -> None:
    """``results.json`` (one row per fit) and ``text_adds.json`` (the graph-only control, for ``export
    --evaluation``)."""

    raw = result_rows(results, set(ctx.rare))
    atomic_write_text(out / "results.json", json.dumps(raw, ensure_ascii=False, indent=1) + "\n")
    adds = {"classifier": ctx.classifier, "dev": ctx.dev, "sets": text_adds_rows(summaries)}
    atomic_write_text(out / TEXT_ADDS_FILE, json.dumps(adds, ensure_ascii=False, indent=1) + "\n")


def _code_gain_sections(results: Sequence[RunResult], best: dict[str, Summary], rare: set[str], out: Path) -> list[str]:
    """Per best mix of each set: how many codes gain or lose recall, with a bar plot."""
    lines: list[str] = []
    for name, s in best.items():
        gains = per_code_gain(results, name, s.point)
        if not gains:
            continue
        png = f"code_gains_{name}.png"
        _plot_code_gains(gains, rare, f"{name}: {s.point.label} vs real only", out / png)
        up = sum(g > 0 for g in gains.values())
        down = sum(g < 0 for g in gains.values())
        lines += [
            f"## Per-code recall gain: {name}, {s.point.label}",
            "",
            f"{up} codes gain, {down} lose, {len(gains) - up - down} unchanged.",
            "",
            f"![per-code gains]({png})",
            "",
        ]
    return lines


def write_upsample_report(
    out: Path, results: Sequence[RunResult], summaries: Sequence[Summary], ctx: UpsampleContext
) -> Path:
    """``out/upsample.md`` plus ``accuracy_vs_share.png`` and one ``code_gains_<set>.png`` per set."""
    out.mkdir(parents=True, exist_ok=True)
    rare = set(ctx.rare)
    best = best_per_set(summaries)
    _plot_accuracy(summaries, out / "accuracy_vs_share.png")
    lines = [
        "# RuMedTop3 upsampling with synthetic notes",
        "",
        f"Train `{ctx.train}`, evaluated on `{ctx.dev}`; seeds {', '.join(map(str, ctx.seeds))}; "
        f"{len(results)} fits in {ctx.wall_s:.0f} s.",
        f"Classifier: {ctx.classifier}. Figures are mean ± std over seeds, x100.",
        f"Synthetic share = synthetic notes added / {'kept real notes' if ctx.share_of == 'real' else 'set size'}"
        " (capped by the set size, drawn by code without replacement); real share keeps that share of every code.",
        f"Rare codes ({len(rare)}): {ctx.rare_rule}. Gains are paired by seed against real 1 + syn 0.",
        "",
        "![accuracy vs synthetic share](accuracy_vs_share.png)",
        "",
    ]
    if best:
        lines += ["## Best mix per synthetic set", ""]
        rows = [
            [
                name,
                s.point.label,
                pm(s.accuracy),
                pm(s.gain),
                pm(s.rare_accuracy),
                pm(s.rare_gain),
            ]
            for name, s in best.items()
        ]
        lines += [markdown_table(["set", "mix", "acc", "gain", "rare acc", "rare gain"], rows), ""]
    lines += _text_adds_section(results, summaries, ctx)
    header = ["set", "mix", "n real", "n syn", "acc", "Hit@3", "macro-F1", "rare acc", "gain", "rare gain"]
    rows = [
        [
            s.set_name,
            s.point.label,
            f"{s.n_real:.0f}",
            f"{s.n_syn:.0f}",
            pm(s.accuracy),
            pm(s.hit3),
            pm(s.macro_f1),
            pm(s.rare_accuracy),
            "–" if s.point == BASELINE else pm(s.gain),
            "–" if s.point == BASELINE else pm(s.rare_gain),
        ]
        for s in summaries
    ]
    lines += ["## All runs", "", markdown_table(header, rows), ""]
    lines += _code_gain_sections(results, best, rare, out)
    unseen = sorted({c for r in results for c in r.scores.unseen})
    if unseen or ctx.warnings:
        lines += ["## Warnings", ""]
        if unseen:
            lines.append(f"- evaluation codes never seen in a training set (counted as misses): {', '.join(unseen)}")
        shown = ctx.warnings[:20]
        lines += [f"- `{w}`" for w in shown]
        if len(ctx.warnings) > len(shown):
            lines.append(f"- … and {len(ctx.warnings) - len(shown)} more")
        lines.append("")
    path = out / "upsample.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _plot_duplicates(qs: Sequence[Quality], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    bins = np.linspace(0, 1, 41)
    for q in qs:
        axes[0].hist(q.train_overlap.jaccard, bins=bins, histtype="step", lw=1.5, label=q.name)
        axes[1].hist(q.prompt_overlap.jaccard, bins=bins, histtype="step", lw=1.5, label=q.name)
    for ax, title in zip(axes, ["vs whole train set", "vs prompt note (or closest same-code note)"], strict=True):
        ax.axvline(NEAR_DUPLICATE, color="grey", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("max word 3-shingle Jaccard")
        ax.set_title(title)
    axes[0].set_ylabel("synthetic notes")
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def _plot_lengths(qs: Sequence[Quality], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    top = max(np.percentile(np.r_[q.length_real, q.length_syn], 99) for q in qs)
    bins = np.linspace(0, top, 40)
    ax.hist(qs[0].length_real, bins=bins, density=True, color="lightgrey", label="real train")
    for q in qs:
        ax.hist(q.length_syn, bins=bins, density=True, histtype="step", lw=1.5, label=q.name)
    ax.set_xlabel("words per note")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def quality_rows(qs: Sequence[Quality]) -> tuple[list[str], list[list[str]]]:
    """One column per set, one row per figure (the real train notes as the first column)."""
    header = ["", "real train", *[q.name for q in qs]]

    def pct(x: float) -> str:
        return f"{100 * x:.2f}%"

    q0 = qs[0]
    rows = [
        ["notes", str(q0.n_real), *[str(q.n) for q in qs]],
        [
            "words: median (p10–p90)",
            f"{np.median(q0.length_real):.0f} ({np.percentile(q0.length_real, 10):.0f}–"
            f"{np.percentile(q0.length_real, 90):.0f})",
            *[
                f"{np.median(q.length_syn):.0f} ({np.percentile(q.length_syn, 10):.0f}–"
                f"{np.percentile(q.length_syn, 90):.0f})"
                for q in qs
            ],
        ],
    ]
    for n in (1, 2, 3):
        rows.append([f"distinct-{n}", f"{q0.distinct_real[n]:.3f}", *[f"{q.distinct_syn[n]:.3f}" for q in qs]])
    rows += [
        [
            "symptom recall",
            "–",
            *["–" if q.symptom_recall is None else f"{q.symptom_recall:.3f}" for q in qs],
        ],
        [
            "code fidelity: top-1 / top-3 (classifier on real train)",
            "–",
            *["–" if q.fidelity is None else f"{pct(q.fidelity[0])} / {pct(q.fidelity[1])}" for q in qs],
        ],
        ["accepted by the filter", "–", *["–" if q.accept_rate is None else pct(q.accept_rate) for q in qs]],
        [
            "restatement share (novelty ≤ the filter's max_restatement)",
            "–",
            *["–" if q.restatement_share is None else pct(q.restatement_share) for q in qs],
        ],
        [
            "non-word share (notes with a word no dictionary knows)",
            "–" if q0.nonword_share_real is None else pct(q0.nonword_share_real),
            *["–" if q.nonword_share is None else pct(q.nonword_share) for q in qs],
        ],
        ["exact copy of a train note", "–", *[pct(q.exact_train) for q in qs]],
        [f"near-copy of a train note (J ≥ {NEAR_DUPLICATE})", "–", *[pct(q.near_rate("train")) for q in qs]],
        [f"near-copy of its prompt note (J ≥ {NEAR_DUPLICATE})", "–", *[pct(q.near_rate("prompt")) for q in qs]],
        ["max Jaccard vs train: median / p99 / max", "–"]
        + [
            f"{np.median(q.train_overlap.jaccard):.3f} / {np.percentile(q.train_overlap.jaccard, 99):.3f} / "
            f"{q.train_overlap.jaccard.max():.3f}"
            for q in qs
        ],
        ["mean containment in prompt note", "–", *[f"{q.prompt_overlap.containment.mean():.3f}" for q in qs]],
        ["exact duplicates within the set", "–", *[pct(q.exact_within) for q in qs]],
        [f"near-duplicates within the set (J ≥ {NEAR_DUPLICATE})", "–", *[pct(q.near_rate("within")) for q in qs]],
        ["real-vs-synthetic AUC (char TF-IDF + LR)", "–", *[pm(q.auc, 3) for q in qs]],
        ["real-vs-synthetic AUC (length only)", "–", *[f"{q.auc_length:.3f}" for q in qs]],
    ]
    return header, rows


def write_quality_report(out: Path, qs: Sequence[Quality], *, train: str, notes: Sequence[str]) -> Path:
    """``out/quality.md`` plus ``duplicates.png`` and ``lengths.png``."""
    if not qs:
        raise ParameterError("{qs} is empty: no synthetic sets to report")
    out.mkdir(parents=True, exist_ok=True)
    _plot_duplicates(qs, out / "duplicates.png")
    _plot_lengths(qs, out / "lengths.png")
    header, rows = quality_rows(qs)
    refs = {q.name: q.prompt_reference for q in qs}
    lines = [
        "# Synthetic note quality and privacy",
        "",
        f"Real notes: `{train}`. Distinct-n on equally many real and synthetic notes. Copying is word 3-shingle "
        f"Jaccard (J) against the real notes; a note is a near-copy when J ≥ {NEAR_DUPLICATE}. "
        "AUC: 5-fold cross-validated, balanced classes; 0.5 means indistinguishable.",
        "",
        markdown_table(header, rows),
        "",
        "Prompt note used for each set: " + "; ".join(f"{k}: {v}" for k, v in refs.items()) + ".",
        "",
        "![duplicate-rate histogram](duplicates.png)",
        "",
        "![lengths](lengths.png)",
        "",
    ]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    path = out / "quality.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _plot_rows(rows: Sequence[Row], title: str, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(rows)), 3.6))
    x = np.arange(len(rows))
    colors = ["tab:grey" if r.control_of else "tab:blue" for r in rows]
    ax.bar(x, [r.accuracy[0] for r in rows], yerr=[r.accuracy[1] for r in rows], capsize=3, color=colors)
    ax.set_xticks(x, [r.set_name for r in rows], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("dev top-1 accuracy, %")
    ax.set_title(title + " (grey: graph-only controls)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def write_experiment_report(out: Path, title: str, intro: Sequence[str], rows: Sequence[Row], *, stem: str) -> Path:
    """``out/<stem>.md`` with a table and a bar chart of one experiment's rows."""
    if not rows:
        raise ParameterError("{rows} is empty")
    out.mkdir(parents=True, exist_ok=True)
    _plot_rows(rows, title, out / f"{stem}.png")
    header = ["set", "seeds", "training notes", "acc (evaluated codes)", "Hit@3 (evaluated codes)", "acc (all dev)"]
    table = [
        [r.set_name, str(r.seeds), f"{r.n_train:.0f}", pm(r.accuracy), pm(r.hit3), pm(r.overall_accuracy)] for r in rows
    ]
    lines = [f"# {title}", "", *intro, "", markdown_table(header, table), "", f"![{title}]({stem}.png)", ""]
    path = out / f"{stem}.md"
    atomic_write_text(path, "\n".join(lines))
    return path
