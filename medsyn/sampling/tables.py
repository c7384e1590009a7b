"""Everything the samplers read from the graph, fetched with a handful of SPARQL queries up front.

Sampling then runs on plain lists and numpy arrays: one query per table instead of one per sample is what makes
tens of thousands of samples per second possible, on Oxigraph or a remote endpoint alike.

Every table is sorted by IRI or notation, so the same graph gives the same tables (and the same samples) on any
store, whatever order its engine returns rows in.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medsyn.errors import InputError
from medsyn.kg.queries import run_named
from medsyn.kg.store import Row, Store, to_python
from medsyn.kg.version import graph_version
from medsyn.kg.vocab import code_iri, is_valid_code, normalize_code, source_iri
from medsyn.sampling.weights import DEFAULT_SOURCES, MIN_WORDS, CodeWeight, source_list, weights_from_counts

WEIGHTED_SOURCE = "hsdn"
"""Source of weighted (TF-IDF) symptoms for the softmax strategy."""


@dataclass(frozen=True)
class WeightedSymptoms:
    """Symptoms of one code from the weighted source: indices into the symptom table and their raw weights."""

    symptoms: list[int]
    weights: NDArray[np.float64]


@dataclass(frozen=True)
class SamplingTables:
    """Index-based tables; ``cat_*`` lists are per category, ``code_*`` per code, ``sym_*`` per symptom."""

    kg_version: str | None
    sources: tuple[str, ...]
    weights: list[CodeWeight]
    cat_notation: list[str]
    cat_weight: NDArray[np.float64]
    cat_codes: list[list[int]]
    """Codes of the category with symptoms from the paper sources (the sub-codes drawn uniformly)."""
    cat_notes: list[list[int]]
    """Example notes with at least ``min_words`` words; all notes of the category when none has that many."""
    code_notation: list[str]
    code_iris: list[str]
    code_label: list[str | None]
    code_sex: list[str | None]
    code_symptoms: list[list[int]]
    sym_iri: list[str]
    sym_label: list[str]
    note_id: list[str]
    note_text: list[str]
    # Filled only for strategies that need them (see ``load_tables``).
    cat_weighted_codes: list[list[int]] = field(default_factory=list)
    code_weighted: dict[int, WeightedSymptoms] = field(default_factory=dict)
    code_drugs: list[list[int]] = field(default_factory=list)
    drug_iri: list[str] = field(default_factory=list)
    drug_name: list[str | None] = field(default_factory=list)
    drug_side_effects: list[tuple[list[int], NDArray[np.float64]]] = field(default_factory=list)
    se_iri: list[str] = field(default_factory=list)
    se_name: list[str | None] = field(default_factory=list)

    def category_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.cat_notation)}


def pick_label(labels: Iterable[tuple[str, str]], lang: str) -> str | None:
    """The label in ``lang``, else English, else any; the smallest of equals, so the choice is stable.

    >>> pick_label([("Headache", "en"), ("головная боль", "ru")], "ru")
    'головная боль'
    """
    best: tuple[int, str] | None = None
    for text, tag in labels:
        rank = 0 if tag.lower().startswith(lang) else 1 if tag.lower().startswith("en") else 2
        if best is None or (rank, text) < best:
            best = (rank, text)
    return best[1] if best else None


def _labels(rows: Sequence[Row], key: str) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        label = row.get("label")
        if label is not None:
            out[row[key].value].append((label.value, getattr(label, "language", None) or ""))
    return out


_CACHE: weakref.WeakKeyDictionary[object, dict[tuple[object, ...], SamplingTables]] = weakref.WeakKeyDictionary()


def load_tables(
    store: Store,
    *,
    sources: str | Sequence[str] = DEFAULT_SOURCES,
    min_words: int = MIN_WORDS,
    lang: str = "ru",
    weighted_source: str | None = None,
    drugs: bool = False,
    cache: bool = True,
) -> SamplingTables:
    """Fetch the sampling tables; cached per store and graph version (a graph without a version is never cached).

    ``weighted_source`` adds the weighted symptoms of that source; ``drugs`` adds drugs and side effects.
    """
    names = source_list(sources)
    version = graph_version(store)
    key = (version, names, min_words, lang, weighted_source, drugs)
    hit = None
    if cache and version is not None:
        with contextlib.suppress(TypeError):  # a store that cannot be weakly referenced is simply not cached
            hit = _CACHE.get(store, {}).get(key)
    if hit is not None:
        return hit
    tables = _fetch(store, version, names, min_words, lang, weighted_source, drugs)
    if cache and version is not None:
        with contextlib.suppress(TypeError):
            _CACHE.setdefault(store, {})[key] = tables
    return tables


def _source_rows(store: Store, names: Sequence[str]) -> tuple[list[Row], list[Row]]:
    """Rows of ``codes.rq`` and ``code_symptoms.rq`` for each source, one query per source and table."""
    code_rows: list[Row] = []
    symptom_rows: list[Row] = []
    for name in names:
        code_rows += run_named(store, "sampling/codes", source=source_iri(name))
        symptom_rows += run_named(store, "sampling/code_symptoms", source=source_iri(name))
    return code_rows, symptom_rows


def _fetch(
    store: Store,
    version: str | None,
    names: tuple[str, ...],
    min_words: int,
    lang: str,
    weighted_source: str | None,
    drugs: bool,
) -> SamplingTables:
    if min_words < 0:
        raise InputError(f"min_words must be >= 0, got {min_words}")
    code_rows, symptom_rows = _source_rows(store, names)
    w_code_rows, weighted_rows = _source_rows(store, [weighted_source]) if weighted_source else ([], [])
    if not symptom_rows:
        raise InputError(
            f"the graph has no ICD-10 categories with symptoms from source(s) {', '.join(names)}; "
            "build it with `medsyn kg build` or choose another source"
        )
    code_info: dict[str, tuple[str, str, str | None]] = {}  # code IRI -> (notation, category notation, sex)
    for row in (*code_rows, *w_code_rows):
        sex = row.get("sex")
        code_info[row["code"].value] = (
            str(row["notation"].value),
            str(row["categoryNotation"].value),
            sex.value if sex is not None else None,
        )
    code_labels = _labels([*code_rows, *w_code_rows], "code")
    sym_labels = _labels([*symptom_rows, *weighted_rows], "symptom")
    sym_iri = sorted({r["symptom"].value for r in (*symptom_rows, *weighted_rows)})
    sym_index = {iri: i for i, iri in enumerate(sym_iri)}

    by_code: dict[str, set[int]] = defaultdict(set)
    for row in symptom_rows:
        if row["code"].value in code_info:
            by_code[row["code"].value].add(sym_index[row["symptom"].value])
    cat_names = sorted({code_info[iri][1] for iri in by_code})
    cat_index = {c: i for i, c in enumerate(cat_names)}
    code_iris = sorted((i for i in code_info if code_info[i][1] in cat_index), key=lambda i: code_info[i][0])
    code_index = {iri: i for i, iri in enumerate(code_iris)}
    code_symptoms = [sorted(by_code.get(iri, ())) for iri in code_iris]
    cat_codes: list[list[int]] = [[] for _ in cat_names]
    cat_symptoms: list[set[int]] = [set() for _ in cat_names]
    for c, iri in enumerate(code_iris):
        if code_symptoms[c]:
            ci = cat_index[code_info[iri][1]]
            cat_codes[ci].append(c)
            cat_symptoms[ci].update(code_symptoms[c])

    notes, long_notes, all_notes = _notes_by_category(store, cat_names, min_words)
    weights = weights_from_counts(
        {c: (len(long_notes[i]), len(cat_codes[i]), len(cat_symptoms[i])) for i, c in enumerate(cat_names)}
    )
    tables = SamplingTables(
        kg_version=version,
        sources=names,
        weights=weights,
        cat_notation=cat_names,
        cat_weight=np.array([w.weight for w in weights], dtype=np.float64),
        cat_codes=cat_codes,
        cat_notes=[long or every for long, every in zip(long_notes, all_notes, strict=True)],
        code_notation=[code_info[i][0] for i in code_iris],
        code_iris=code_iris,
        code_label=[pick_label(code_labels.get(i, []), lang) for i in code_iris],
        code_sex=[code_info[i][2] for i in code_iris],
        code_symptoms=code_symptoms,
        sym_iri=sym_iri,
        sym_label=[pick_label(sym_labels.get(i, []), lang) or i.rsplit("/", 1)[-1] for i in sym_iri],
        note_id=[n[0] for n in notes],
        note_text=[n[1] for n in notes],
    )
    if weighted_source:
        tables = _add_weighted(tables, weighted_rows, code_index, code_info, sym_index)
    if drugs:
        tables = _add_drugs(store, tables, code_info, lang)
    return tables


def _notes_by_category(
    store: Store, cat_names: list[str], min_words: int
) -> tuple[list[tuple[str, str, str, Any]], list[list[int]], list[list[int]]]:
    """The example notes (id, text, category IRI, words) sorted, and per category the positions of its notes with
    at least ``min_words`` words and of all its notes."""
    notes = sorted(
        (str(r["noteId"].value), str(r["text"].value), r["category"].value, to_python(r.get("words")))
        for r in run_named(store, "sampling/example_notes")
    )
    cat_by_iri = {code_iri(c).value: i for i, c in enumerate(cat_names)}
    long_notes: list[list[int]] = [[] for _ in cat_names]
    all_notes: list[list[int]] = [[] for _ in cat_names]
    for i, (_nid, _text, cat_iri, words) in enumerate(notes):
        ci = cat_by_iri.get(cat_iri)
        if ci is None:
            continue
        all_notes[ci].append(i)
        if words is not None and int(words) >= min_words:
            long_notes[ci].append(i)
    return notes, long_notes, all_notes


def _add_weighted(
    tables: SamplingTables,
    rows: Sequence[Row],
    code_index: dict[str, int],
    code_info: dict[str, tuple[str, str, str | None]],
    sym_index: dict[str, int],
) -> SamplingTables:
    per_code: dict[int, dict[int, float]] = defaultdict(dict)
    for row in rows:
        c = code_index.get(row["code"].value)
        if c is None:
            continue
        w = to_python(row.get("weight"))
        s = sym_index[row["symptom"].value]
        # Duplicate associations (two labels of one symptom) keep the largest weight, as the importers do.
        per_code[c][s] = max(per_code[c].get(s, float("-inf")), float(w) if w is not None else 1.0)
    cat_index = tables.category_index()
    cat_weighted: list[list[int]] = [[] for _ in tables.cat_notation]
    weighted: dict[int, WeightedSymptoms] = {}
    for c in sorted(per_code):
        syms = sorted(per_code[c])
        weighted[c] = WeightedSymptoms(syms, np.array([per_code[c][s] for s in syms], dtype=np.float64))
        cat_weighted[cat_index[code_info[tables.code_iris[c]][1]]].append(c)
    return replace(tables, cat_weighted_codes=cat_weighted, code_weighted=weighted)


def _add_drugs(
    store: Store,
    tables: SamplingTables,
    code_info: dict[str, tuple[str, str, str | None]],
    lang: str,
) -> SamplingTables:
    drug_rows = run_named(store, "sampling/drugs")
    se_rows = run_named(store, "sampling/side_effects")
    drug_labels = _labels(drug_rows, "drug")
    drug_iris = sorted({r["drug"].value for r in drug_rows})
    drug_index = {iri: i for i, iri in enumerate(drug_iris)}
    by_disease: dict[str, set[int]] = defaultdict(set)
    for row in drug_rows:
        by_disease[row["disease"].value].add(drug_index[row["drug"].value])
    code_drugs = []
    for iri in tables.code_iris:
        cat_iri = code_iri(code_info[iri][1]).value
        code_drugs.append(sorted(by_disease.get(iri, set()) | by_disease.get(cat_iri, set())))

    se_labels = _labels(se_rows, "sideEffect")
    se_iris = sorted({r["sideEffect"].value for r in se_rows})
    se_index = {iri: i for i, iri in enumerate(se_iris)}
    freq: dict[int, dict[int, float]] = defaultdict(dict)
    for row in se_rows:
        d = drug_index.get(row["drug"].value)
        if d is None:
            continue
        s = se_index[row["sideEffect"].value]
        freq[d][s] = max(freq[d].get(s, 0.0), float(to_python(row["frequency"])))
    drug_ses = []
    for d in range(len(drug_iris)):
        ses = sorted(freq.get(d, {}))
        drug_ses.append((ses, np.array([freq[d][s] for s in ses], dtype=np.float64)))
    return replace(
        tables,
        code_drugs=code_drugs,
        drug_iri=drug_iris,
        drug_name=[pick_label(drug_labels.get(i, []), lang) for i in drug_iris],
        drug_side_effects=drug_ses,
        se_iri=se_iris,
        se_name=[pick_label(se_labels.get(i, []), lang) for i in se_iris],
    )


def restrict(tables: SamplingTables, codes: Sequence[str]) -> SamplingTables:
    """Keep only the given categories (``M54``) or codes (``M54.5``: that category, drawing only that code).

    Raises InputError for a malformed code or one the tables cannot sample from.
    """
    cat_index = tables.category_index()
    code_index = {n: i for i, n in enumerate(tables.code_notation)}
    keep_cats: set[int] = set()
    pinned: dict[int, set[int]] = defaultdict(set)
    for raw in codes:
        code = normalize_code(raw)
        if not is_valid_code(code):
            raise InputError(f"invalid ICD-10 code {raw!r}")
        if code in cat_index:
            keep_cats.add(cat_index[code])
        elif code in code_index:
            c = code_index[code]
            ci = cat_index[code[:3]]
            if c not in tables.cat_codes[ci]:
                raise InputError(f"code {code} has no symptoms from source(s) {', '.join(tables.sources)}")
            pinned[ci].add(c)
        else:
            raise InputError(
                f"unknown code {code}: not a category or code with symptoms from source(s) "
                f"{', '.join(tables.sources)} (see `medsyn weights`)"
            )
    selected = keep_cats | set(pinned)
    weight = np.where(np.isin(np.arange(len(tables.cat_notation)), sorted(selected)), tables.cat_weight, 0.0)
    cat_codes = [
        sorted(pinned[i]) if i in pinned and i not in keep_cats else list(cs) for i, cs in enumerate(tables.cat_codes)
    ]
    cat_weighted = [
        [c for c in cs if c in pinned[i]] if i in pinned and i not in keep_cats else list(cs)
        for i, cs in enumerate(tables.cat_weighted_codes)
    ]
    return replace(tables, cat_weight=weight, cat_codes=cat_codes, cat_weighted_codes=cat_weighted)


def code_weights(
    store: Store, *, sources: str | Sequence[str] = DEFAULT_SOURCES, min_words: int = MIN_WORDS
) -> list[CodeWeight]:
    """Weights of every category that has symptoms from ``sources``, sorted by category.

    The counts come from the sampling tables (``sparql/sampling/codes.rq``, ``code_symptoms.rq``,
    ``example_notes.rq``), so the weights are exactly those the sampler draws with. Raises InputError when the graph
    has no such category (an empty graph, or a source it does not hold).
    """
    return load_tables(store, sources=sources, min_words=min_words).weights


def real_note_counts(store: Store, *, sources: str | Sequence[str] = DEFAULT_SOURCES) -> dict[str, int]:
    """Real example notes per category (any length), for the categories the sampler can draw."""
    tables = load_tables(store, sources=sources, min_words=0)
    return {cat: len(notes) for cat, notes in zip(tables.cat_notation, tables.cat_notes, strict=True)}
