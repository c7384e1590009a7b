"""The quality filter's figures in docs/generation.md ("Does a note read as a note?"), as Markdown on stdout.

    python scripts/filter_figures.py

1. On the labelled table (tests/data/note_labels.tsv): how the thresholds were chosen (Youden J = share of the
   bad label rejected minus share of plausible notes rejected, over the rows with a requested list, which are the
   notes a run's filter judges) and the acceptance precision / recall of the old and the new filter, with the
   accepted notes per label.
   These use the 240 rows labelled first (sources own, gpt4, real), on which the thresholds were chosen.
2. The phrasing check (unfamiliar word pairs against the real train notes) on our own model's rows: the 120 accepted
   notes and the 60 notes today's filter rejected for symptom recall (source own_rejected), its threshold grid with
   the share of real notes it would reject (each against the others), and what it and a lower recall bar accept.
3. On the whole sets (our 1,550 accepted notes, the authors' 2,378 GPT-4 notes with their requested lists, the
   4,690 real train notes): restatement share and non-word share (``medsyn.evaluation.quality.fluency_shares``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from medsyn.evaluation.data import (
    attach_requested,
    default_requested,
    default_synthetic,
    default_train,
    read_notes,
    read_requested,
)
from medsyn.evaluation.note_labels import (
    LABELS,
    OLD_FILTER,
    LabelledNote,
    OthersHold,
    acceptance,
    read_labels,
    real_phrase_counts,
    real_vocabulary,
    table_scores,
)
from medsyn.evaluation.quality import fluency_shares
from medsyn.evaluation.report import markdown_table
from medsyn.generation.filter import FilterConfig, Scores
from medsyn.generation.fluency import phrases, unseen_phrases

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "tests" / "data" / "note_labels.tsv"
OWN = ROOT / "docs" / "reports" / "local-v1" / "notes.jsonl"
FIRST = ("own", "gpt4", "real")  # the 240 rows the restatement and non-word thresholds were chosen on
OWN_MODEL = ("own", "own_rejected")
PHRASE_GRID = (0.4, 0.45, 0.5, 0.55, 0.6, 0.7)


def _youden(rows: Sequence[LabelledNote], scores: Sequence[Scores], bad: str, rejects: Callable[[Scores], bool]) -> str:
    pairs = [(r, s) for r, s in zip(rows, scores, strict=True) if r.requested]
    b = [rejects(s) for r, s in pairs if r.label == bad]
    p = [rejects(s) for r, s in pairs if r.label == "plausible"]
    tp, fp = sum(b) / len(b), sum(p) / len(p)
    return f"{100 * tp:.1f}% | {100 * fp:.1f}% | {tp - fp:.3f}"


def thresholds(rows: Sequence[LabelledNote], scores: Sequence[Scores]) -> None:
    print("| check | threshold | bad label rejected | plausible rejected | J |\n|---|---|---|---|---|")
    for t in (0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5):
        print(
            f"| restatement (vs list) | novelty <= {t} | "
            + _youden(rows, scores, "list", lambda s, t=t: s.novelty <= t)
            + " |"
        )
    for n in (0, 1, 2):
        j = _youden(rows, scores, "nonsense", lambda s, n=n: len(s.nonwords) > n)
        print(f"| non-word (vs nonsense) | more than {n} | {j} |")
    for q in (0.02, 0.03, 0.04, 0.05, 0.06, 0.08):
        j = _youden(rows, scores, "nonsense", lambda s, q=q: len(s.nonwords) / max(s.words, 1) > q)
        print(f"| non-word (vs nonsense) | rate > {q} | {j} |")
    print()


def filters(rows: Sequence[LabelledNote], scores: Sequence[Scores]) -> None:
    new = FilterConfig()
    configs = {
        "old (recall, similarity, repetition, length)": OLD_FILTER,
        f"old + restatement (novelty <= {new.max_restatement})": replace(
            OLD_FILTER, max_restatement=new.max_restatement
        ),
        f"old + non-word (rate > {new.max_nonword_rate})": replace(OLD_FILTER, max_nonword_rate=new.max_nonword_rate),
        "new (both)": new,
    }
    for subset, keep in (("all 240 rows", lambda r: True), ("generated rows (own + GPT-4)", lambda r: r.requested)):
        idx = [i for i, r in enumerate(rows) if keep(r)]
        _acceptance_table(subset, [rows[i] for i in idx], [scores[i] for i in idx], configs)


def _acceptance_table(
    title: str, rows: Sequence[LabelledNote], scores: Sequence[Scores], configs: dict[str, FilterConfig]
) -> None:
    out = []
    for name, cfg in configs.items():
        a = acceptance(rows, scores, cfg)
        counts = [f"{a.accepted[k]} / {a.total[k]}" for k in LABELS]
        out.append([name, f"{a.precision:.3f}", f"{a.recall:.3f}", *counts])
    print(f"{title}:\n")
    print(markdown_table(["filter", "precision", "recall", *[f"accepted {k}" for k in LABELS]], out))
    print()


def _share(flags: Sequence[bool]) -> str:
    return f"{100 * sum(flags) / len(flags):.1f}%" if flags else "–"


def phrasing(rows: Sequence[LabelledNote], scores: Sequence[Scores]) -> None:
    counts = real_phrase_counts()
    real = [unseen_phrases(t, OthersHold(counts, frozenset(phrases(t)))) for t in read_notes(default_train()).texts]
    own = [(r, s) for r, s in zip(rows, scores, strict=True) if r.source in OWN_MODEL]
    gpt4 = [s for r, s in zip(rows, scores, strict=True) if r.source == "gpt4" and r.label == "plausible"]
    out = []
    for t in PHRASE_GRID:
        bad = [s.unseen_phrases > t for r, s in own if r.label == "nonsense"]  # type: ignore[operator]
        good = [s.unseen_phrases > t for r, s in own if r.label == "plausible"]  # type: ignore[operator]
        j = (sum(bad) / len(bad)) - (sum(good) / len(good))
        out.append(
            [
                f"unseen pairs > {t}",
                _share(bad),
                _share(good),
                f"{j:.3f}",
                _share([s.unseen_phrases > t for s in gpt4]),  # type: ignore[operator]
                _share([x > t for x in real]),
            ]
        )
    print(f"Phrasing threshold on our model's {len(own)} rows (own + own_rejected):\n")
    head = ["check", "nonsense rejected", "plausible rejected", "J", "GPT-4 plausible rejected", "real notes rejected"]
    print(markdown_table(head, out))
    print()
    today = FilterConfig()
    configs = {
        "today (recall >= 0.5)": today,
        "today + phrasing (> 0.5)": replace(today, max_unseen_phrases=0.5),
        "today + phrasing (> 0.6)": replace(today, max_unseen_phrases=0.6),
        "recall off": replace(today, min_recall=0.0),
        "recall off + phrasing (> 0.5)": replace(today, min_recall=0.0, max_unseen_phrases=0.5),
        "recall off + phrasing (> 0.6)": replace(today, min_recall=0.0, max_unseen_phrases=0.6),
    }
    for source in OWN_MODEL:
        rs = [r for r, _ in own if r.source == source]
        _acceptance_table(f"{source} ({len(rs)} rows)", rs, [s for r, s in own if r.source == source], configs)


def whole_sets(vocabulary: frozenset[str]) -> None:
    gpt4, paired = attach_requested(read_notes(default_synthetic()[0]), read_requested(default_requested()))
    sets = {
        "own (Gemma 3 270M, accepted)": read_notes(OWN),
        "GPT-4 (authors)": gpt4,
        "real train": read_notes(default_train()),
    }
    out = []
    for name, ns in sets.items():
        restated, nonword = fluency_shares(ns, vocabulary)
        out.append(
            [name, str(len(ns.notes)), "–" if restated is None else f"{100 * restated:.1f}%", f"{100 * nonword:.1f}%"]
        )
    print(markdown_table(["set", "notes", "restatement share", "non-word share"], out))
    print(f"\nGPT-4 notes paired with their requested lists: {paired}.")


def main() -> None:
    rows = read_labels(TABLE)
    vocabulary = real_vocabulary()
    scores = table_scores(rows, vocabulary, real_phrase_counts())
    first = [i for i, r in enumerate(rows) if r.source in FIRST]
    thresholds([rows[i] for i in first], [scores[i] for i in first])
    filters([rows[i] for i in first], [scores[i] for i in first])
    phrasing(rows, scores)
    whole_sets(vocabulary)


if __name__ == "__main__":
    main()
