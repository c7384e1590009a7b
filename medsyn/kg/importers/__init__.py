"""Knowledge-source importers, one module per source, and their registry.

Each importer is ``load(ctx: BuildContext) -> list[Quad]``: it reads its files under ``ctx.data``, raises
:class:`~medsyn.errors.InputError` naming ``file:line`` on malformed input, and returns quads in its own named graph
(``graph/source/<name>``; the hierarchy sources write ``graph/icd10``). Sources run in registry order, so the ICD-10
hierarchy exists before any source links to it.

>>> resolve(None)[:2]
['icd10-minzdrav', 'who-icd10']
>>> "sider4" in resolve(None), "sider4" in resolve(["all"])
(False, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module

from pyoxigraph import Quad

from medsyn.errors import InputError, ParameterError
from medsyn.kg.importers._common import BuildContext


@dataclass(frozen=True)
class SourceSpec:
    name: str
    module: str
    description: str
    default: bool = True
    non_commercial: bool = False

    def loader(self) -> Callable[[BuildContext], list[Quad]]:
        return import_module(self.module).load  # type: ignore[no-any-return]


SOURCES: dict[str, SourceSpec] = {
    s.name: s
    for s in (
        SourceSpec("icd10-minzdrav", "medsyn.kg.importers.icd10_minzdrav", "ICD-10 hierarchy, Russian titles"),
        SourceSpec("who-icd10", "medsyn.kg.importers.who_icd10", "English titles (WHO ICD-10 2019)"),
        SourceSpec("sex-restrictions", "medsyn.kg.importers.sex_restrictions", "sex-restricted codes (WHO Vol. 2)"),
        SourceSpec("medsyn-mkg", "medsyn.kg.importers.medsyn_mkg", "DOID/MeSH/UMLS cross-references, names"),
        SourceSpec("wikimed", "medsyn.kg.importers.wikimed", "symptom map of the MedSyn paper"),
        SourceSpec("hsdn", "medsyn.kg.importers.hsdn", "HSDN TF-IDF weighted symptoms"),
        SourceSpec("pharmacotherapydb", "medsyn.kg.importers.pharmacotherapydb", "drug-disease indications"),
        SourceSpec(
            "sider4", "medsyn.kg.importers.sider4", "side-effect frequencies", default=False, non_commercial=True
        ),
        SourceSpec("rumedtop3", "medsyn.kg.importers.rumedtop3", "real example notes (train split)"),
    )
}
REQUIRED = "icd10-minzdrav"


def resolve(names: Sequence[str] | None) -> list[str]:
    """Source names in build order. ``None`` = the defaults (all but sider4); ``"all"`` = every source.

    The Russian register is always included: every other source links into its hierarchy.
    """
    if not names:
        chosen = {n for n, s in SOURCES.items() if s.default}
    else:
        chosen = set()
        for raw in names:
            for n in (p.strip() for p in raw.split(",")):
                if not n:
                    continue
                if n == "all":
                    chosen |= set(SOURCES)
                elif n == "default":
                    chosen |= {k for k, s in SOURCES.items() if s.default}
                elif n in SOURCES:
                    chosen.add(n)
                else:
                    raise InputError(f"unknown source {n!r}; known: all, default, {', '.join(SOURCES)}")
        if not chosen:  # `--sources ''` used to build the register alone and say it was done
            raise ParameterError(
                f"{{sources}} names no source; name them, or default or all (known: {', '.join(SOURCES)})"
            )
    chosen.add(REQUIRED)
    return [n for n in SOURCES if n in chosen]
