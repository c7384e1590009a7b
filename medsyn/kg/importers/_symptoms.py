"""Disease–symptom association nodes, shared by the symptom sources (wikimed, hsdn)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyoxigraph import Literal, NamedNode, Quad

from medsyn.kg.importers._common import double, text
from medsyn.kg.vocab import RDF_TYPE, association_iri, ms, normalize_label, rdfs, source_iri, symptom_iri


@dataclass
class SymptomLinks:
    """Collects (disease, symptom, weight) facts of one source; duplicates keep their largest weight.

    ``quads()`` emits symptom nodes and association nodes with ``weight / max weight of the disease``.
    """

    source: str
    graph: NamedNode
    # (code, normalised symptom) -> (disease iri, raw weight)
    links: dict[tuple[str, str], tuple[NamedNode, float]] = field(default_factory=dict)
    labels: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # normalised -> lang -> surface forms
    mesh: dict[str, set[str]] = field(default_factory=dict)

    def add(
        self,
        code: str,
        disease: NamedNode,
        label: str,
        weight: float,
        *,
        lang: str = "ru",
        en: str = "",
        mesh: str = "",
    ) -> None:
        key = normalize_label(label)
        if not key:
            return
        old = self.links.get((code, key))
        if old is None or weight > old[1]:
            self.links[(code, key)] = (disease, weight)
        forms = self.labels.setdefault(key, {})
        forms.setdefault(lang, set()).add(" ".join(label.split()))
        if en.strip() and lang != "en":
            forms.setdefault("en", set()).add(" ".join(en.split()))
        if mesh:
            self.mesh.setdefault(key, set()).add(mesh)

    def quads(self) -> list[Quad]:
        g, src = self.graph, source_iri(self.source)
        out: list[Quad] = []
        for key in sorted(self.labels):
            s = symptom_iri(key)
            out.append(Quad(s, RDF_TYPE, ms("Symptom"), g))
            for lang, forms in sorted(self.labels[key].items()):
                # One label per language and source: the smallest surface form, so reruns pick the same one.
                out.append(Quad(s, rdfs("label"), text(min(forms), lang), g))
            out += [Quad(s, ms("meshId"), Literal(m), g) for m in sorted(self.mesh.get(key, ()))]
        top: dict[str, float] = {}
        for (code, _), (_, w) in self.links.items():
            top[code] = max(top.get(code, 0.0), w)
        for (code, key), (disease, w) in sorted(self.links.items()):
            a = association_iri("symptom", code, key, self.source)
            norm = w / top[code] if top[code] > 0 else 0.0
            out += [
                Quad(a, RDF_TYPE, ms("SymptomAssociation"), g),
                Quad(a, ms("disease"), disease, g),
                Quad(a, ms("symptom"), symptom_iri(key), g),
                Quad(a, ms("weight"), double(w), g),
                Quad(a, ms("normalizedWeight"), double(norm), g),
                Quad(a, ms("source"), src, g),
            ]
        return out
