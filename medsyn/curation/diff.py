"""``onto diff``: what changed between two versions of the knowledge graph, by meaning rather than by triple.

Each side is a store directory or an RDF file (N-Quads, TriG, Turtle, RDF/XML...). Both are read with the same
queries (``sparql/curation/diff_*.rq``) into comparable facts: OWL classes, ICD-10 codes (kind, parent, labels),
symptoms (labels) and disease-symptom links keyed by (code, symptom, source) with their weights. Which graph or
association IRI holds a fact does not matter, so a restored snapshot or an OWL round trip diffs as empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from medsyn.errors import InputError
from medsyn.kg.queries import run_named
from medsyn.kg.store import FORMATS, OxigraphStore, Store, to_python
from medsyn.kg.vocab import graph_iri

WEIGHT_TOLERANCE = 1e-9
_LANG_TAG = re.compile(r"@[A-Za-z]+(-[A-Za-z0-9]+)*$")


@dataclass
class Snapshot:
    """The facts of one side of a diff."""

    classes: set[str] = field(default_factory=set)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)  # notation -> kind, parent, labels
    symptoms: dict[str, list[str]] = field(default_factory=dict)  # IRI -> sorted labels
    links: dict[tuple[str, str, str], float | None] = field(default_factory=dict)  # (code, symptom, source) -> w


@dataclass
class OntoDiff:
    added_classes: list[str] = field(default_factory=list)
    removed_classes: list[str] = field(default_factory=list)
    added_codes: list[str] = field(default_factory=list)
    removed_codes: list[str] = field(default_factory=list)
    changed_codes: list[dict[str, Any]] = field(default_factory=list)
    added_symptoms: list[dict[str, Any]] = field(default_factory=list)
    removed_symptoms: list[dict[str, Any]] = field(default_factory=list)
    relabelled_symptoms: list[dict[str, Any]] = field(default_factory=list)
    added_links: list[dict[str, Any]] = field(default_factory=list)
    removed_links: list[dict[str, Any]] = field(default_factory=list)
    changed_weights: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f) for f in self.__dataclass_fields__)

    def counts(self) -> dict[str, int]:
        return {f: len(getattr(self, f)) for f in self.__dataclass_fields__}

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts(), **asdict(self)}


def read_snapshot(store: Store) -> Snapshot:
    """Collect the comparable facts of a store."""
    s = Snapshot()
    s.classes = {r["class"].value for r in run_named(store, "curation/diff_classes")}
    notation_of: dict[str, str] = {}
    for r in run_named(store, "curation/diff_codes"):
        n = str(r["notation"].value)
        notation_of[r["code"].value] = n
        entry = s.codes.setdefault(n, {"kind": _local(r["type"].value), "parents": set(), "labels": set()})
        if "parent" in r:
            entry["parents"].add(r["parent"].value)
        if "label" in r:
            entry["labels"].add(_label_text(r["label"]))
    for entry in s.codes.values():
        entry["parent"] = ", ".join(sorted(notation_of.get(p, _local(p)) for p in entry.pop("parents")))
        entry["labels"] = sorted(entry["labels"])
    labels: dict[str, set[str]] = {}
    for r in run_named(store, "curation/diff_symptoms"):
        bucket = labels.setdefault(r["symptom"].value, set())
        if "label" in r:
            bucket.add(_label_text(r["label"]))
    s.symptoms = {k: sorted(v) for k, v in labels.items()}
    for r in run_named(store, "curation/diff_links"):
        code = notation_of.get(r["disease"].value, _local(r["disease"].value))
        key = (code, r["symptom"].value, _local(r["source"].value) if "source" in r else "")
        w = float(to_python(r["weight"])) if "weight" in r else None
        old = s.links.get(key)
        s.links[key] = w if old is None else max(old, w or old)
    return s


def diff_snapshots(old: Snapshot, new: Snapshot) -> OntoDiff:
    d = OntoDiff()
    d.added_classes = sorted(new.classes - old.classes)
    d.removed_classes = sorted(old.classes - new.classes)
    d.added_codes = sorted(new.codes.keys() - old.codes.keys())
    d.removed_codes = sorted(old.codes.keys() - new.codes.keys())
    for code in sorted(old.codes.keys() & new.codes.keys()):
        a, b = old.codes[code], new.codes[code]
        for key in ("kind", "parent", "labels"):
            if a[key] != b[key]:
                d.changed_codes.append({"code": code, "field": key, "old": a[key], "new": b[key]})

    def symptom(iri: str, side: Snapshot) -> dict[str, Any]:
        return {"symptom": iri, "labels": side.symptoms.get(iri, [])}

    d.added_symptoms = [symptom(i, new) for i in sorted(new.symptoms.keys() - old.symptoms.keys())]
    d.removed_symptoms = [symptom(i, old) for i in sorted(old.symptoms.keys() - new.symptoms.keys())]
    for iri in sorted(old.symptoms.keys() & new.symptoms.keys()):
        if old.symptoms[iri] != new.symptoms[iri]:
            d.relabelled_symptoms.append({"symptom": iri, "old": old.symptoms[iri], "new": new.symptoms[iri]})

    def link(key: tuple[str, str, str], w: float | None, side: Snapshot) -> dict[str, Any]:
        labels = side.symptoms.get(key[1], [])
        label = _LANG_TAG.sub("", labels[0]) if labels else ""
        return {"code": key[0], "symptom": key[1], "label": label, "source": key[2], "weight": w}

    d.added_links = [link(k, new.links[k], new) for k in sorted(new.links.keys() - old.links.keys())]
    d.removed_links = [link(k, old.links[k], old) for k in sorted(old.links.keys() - new.links.keys())]
    for k in sorted(old.links.keys() & new.links.keys()):
        a_w, b_w = old.links[k], new.links[k]
        if (a_w is None) != (b_w is None) or (
            a_w is not None and b_w is not None and abs(a_w - b_w) > WEIGHT_TOLERANCE
        ):
            d.changed_weights.append({**link(k, b_w, new), "old": a_w, "new": b_w})
    return d


def diff_stores(old: Store, new: Store) -> OntoDiff:
    return diff_snapshots(read_snapshot(old), read_snapshot(new))


def diff_paths(old: str | Path, new: str | Path) -> OntoDiff:
    """Diff two store directories or RDF files."""
    with open_side(old) as a:
        snap_a = read_snapshot(a)
    with open_side(new) as b:
        snap_b = read_snapshot(b)
    return diff_snapshots(snap_a, snap_b)


@contextmanager
def open_side(path: str | Path) -> Iterator[Store]:
    """A store directory opened read-only, or an RDF file loaded into memory (triple formats into one graph)."""
    p = Path(path)
    if p.is_dir():
        store = OxigraphStore(p, read_only=True)
    elif p.is_file():
        suffix = p.suffix.lower().lstrip(".")
        if suffix not in FORMATS:
            raise InputError(f"cannot tell the RDF format from the suffix .{suffix}", path=p)
        store = OxigraphStore.in_memory()
        store.load(p, format=suffix, graph=graph_iri("import", p.name))
    else:
        raise InputError("no such store directory or RDF file", path=p)
    try:
        yield store
    finally:
        store.close()


def _local(iri: str) -> str:
    return unquote(iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1])


def _label_text(term: Any) -> str:
    lang = getattr(term, "language", None)
    return f"{term.value}@{lang}" if lang else str(term.value)
