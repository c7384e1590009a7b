"""``onto check``: curator work lists — near-duplicate symptom labels and codes that need attention.

Two symptoms are near-duplicates when their labels reduce to the same set of content-word stems (Snowball
stemmer of ``medsyn.textsim``, function words dropped): "боль в пояснице" / "Боли в пояснице" /
"поясничная боль" differ in IRI (IRIs follow the exact normalised label) but mean the same. Each group comes
with the merge command that folds it into its most linked member.

>>> stem_key("Боли в пояснице") == stem_key("боль в пояснице")
True
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from medsyn.kg.queries import run_named
from medsyn.kg.store import Store, to_python
from medsyn.textsim import content_stems


def stem_key(label: str) -> frozenset[str]:
    """The order-free set of content stems a label means.

    Hyphens join their parts first, so a one-letter prefix still counts: "Х-образное" is not "О-образное".

    >>> stem_key("Х-образное искривление ног") == stem_key("о-образное искривление ног")
    False
    """
    return frozenset(content_stems(label.replace("-", "")))


@dataclass(frozen=True)
class SymptomRef:
    iri: str
    label: str
    links: int


@dataclass
class CheckReport:
    duplicate_groups: list[list[SymptomRef]] = field(default_factory=list)
    codes_without_symptoms: list[dict[str, Any]] = field(default_factory=list)
    codes_without_parent: list[dict[str, Any]] = field(default_factory=list)
    codes_without_label: list[dict[str, Any]] = field(default_factory=list)
    unmapped_codes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.duplicate_groups
            or self.codes_without_symptoms
            or self.codes_without_parent
            or self.codes_without_label
            or self.unmapped_codes
        )

    def counts(self) -> dict[str, int]:
        return {
            "near_duplicate_groups": len(self.duplicate_groups),
            "near_duplicate_symptoms": sum(len(g) for g in self.duplicate_groups),
            "codes_without_symptoms": len(self.codes_without_symptoms),
            "codes_without_parent": len(self.codes_without_parent),
            "codes_without_label": len(self.codes_without_label),
            "unmapped_codes": len(self.unmapped_codes),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "near_duplicates": [
                {"keep": g[0].label, "merge": merge_commands(g), "symptoms": [s.__dict__ for s in g]}
                for g in self.duplicate_groups
            ],
            "codes_without_symptoms": self.codes_without_symptoms,
            "codes_without_parent": self.codes_without_parent,
            "codes_without_label": self.codes_without_label,
            "unmapped_codes": self.unmapped_codes,
        }


def near_duplicates(store: Store, *, lang: str = "ru") -> list[list[SymptomRef]]:
    """Groups of distinct symptoms sharing a label's stem set (in any language), most linked first.

    Symptoms carry labels in several languages; two symptoms are joined when any of their labels match, and
    groups are the connected sets. Each symptom is shown by its ``lang`` label when it has one.
    """
    shown: dict[str, tuple[int, str]] = {}
    links: dict[str, int] = {}
    by_key: dict[frozenset[str], set[str]] = {}
    for r in run_named(store, "curation/check_symptom_usage"):
        iri, term = r["symptom"].value, r["label"]
        label = str(term.value)
        links[iri] = int(to_python(r["links"]))
        rank = (0 if getattr(term, "language", None) == lang else 1, label)
        if iri not in shown or rank < shown[iri]:
            shown[iri] = rank
        key = stem_key(label)
        if key:
            by_key.setdefault(key, set()).add(iri)
    parent = {iri: iri for iri in links}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for members in by_key.values():
        first, *rest = sorted(members)
        for other in rest:
            parent[root(other)] = root(first)
    groups: dict[str, list[SymptomRef]] = {}
    for iri in links:
        groups.setdefault(root(iri), []).append(SymptomRef(iri, shown[iri][1], links[iri]))
    out = [sorted(g, key=lambda s: (-s.links, s.label, s.iri)) for g in groups.values() if len(g) > 1]
    return sorted(out, key=lambda g: g[0].label)


def merge_commands(group: list[SymptomRef]) -> list[str]:
    keep = group[0]
    return [f"medsyn onto merge-symptoms {shlex.quote(keep.label)} {shlex.quote(o.label)}" for o in group[1:]]


def check(store: Store) -> CheckReport:
    def rows(name: str) -> list[dict[str, Any]]:
        return [{k: to_python(v) for k, v in r.items()} for r in run_named(store, name)]

    return CheckReport(
        duplicate_groups=near_duplicates(store),
        codes_without_symptoms=rows("curation/check_codes_without_symptoms"),
        codes_without_parent=rows("curation/check_codes_without_parent"),
        codes_without_label=rows("curation/check_codes_without_label"),
        unmapped_codes=rows("curation/check_unmapped_codes"),
    )
