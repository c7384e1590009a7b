"""Shared SPARQL cases: one dataset in the data-model shape and queries whose answers must be identical on the
embedded store, the Oxigraph server and ``medsyn serve`` (compared as sorted rows of N-Triples terms)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyoxigraph import BlankNode, Literal, NamedNode, Quad, Triple

from medsyn.kg.queries import load_query
from medsyn.kg.store import OxigraphStore, Store
from medsyn.kg.vocab import GRAPH, ID, MS
from medsyn.paths import ONTOLOGY_DIR

PREFIXES = f"""PREFIX ms: <{MS}>
PREFIX msid: <{ID}>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>
PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
PREFIX prov: <http://www.w3.org/ns/prov#>
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>
"""

# ICD-10 codes, symptoms with weights, real example notes, a build record, a generation run, and one triple in
# the store's default graph (to tell union from non-union queries apart).
DATASET = (
    PREFIXES.replace("PREFIX ", "@prefix ").replace(">\n", "> .\n")
    + f"""
<urn:medsyn:test:default> rdfs:comment "in the default graph only" .

<{GRAPH}icd10> {{
  msid:icd10\\/XIII a ms:ICD10Chapter ; skos:notation "XIII" ; rdfs:label "Болезни костно-мышечной системы"@ru .
  msid:icd10\\/M50-M54 a ms:ICD10Block ; skos:notation "M50-M54" ; ms:parent msid:icd10\\/XIII .
  msid:icd10\\/M54 a ms:ICD10Category ; skos:notation "M54" ; ms:parent msid:icd10\\/M50-M54 ;
      ms:category msid:icd10\\/M54 ; rdfs:label "Дорсалгия"@ru , "Dorsalgia"@en .
  msid:icd10\\/M54.5 a ms:ICD10Subcode ; skos:notation "M54.5" ; ms:parent msid:icd10\\/M54 ;
      ms:category msid:icd10\\/M54 ; rdfs:label "Боль внизу спины"@ru , "Low back pain"@en .
  msid:icd10\\/N70 a ms:ICD10Category ; skos:notation "N70" ; ms:category msid:icd10\\/N70 ;
      ms:sexRestriction "female" ; rdfs:label "Сальпингит и оофорит"@ru .
}}

<{GRAPH}source/wikimed> {{
  msid:source\\/wikimed a ms:KnowledgeSource ; rdfs:label "WikiMed" .
  msid:symptom\\/s1 a ms:Symptom ; rdfs:label "боль в пояснице"@ru , "Lower back pain"@en .
  msid:symptom\\/s2 a ms:Symptom ; rdfs:label "скованность \\"утром\\"\\tи\\nвечером"@ru .
  msid:symptom\\/s3 a ms:Symptom ; rdfs:label "лихорадка"@ru .
  msid:assoc\\/a1 a ms:SymptomAssociation ; ms:disease msid:icd10\\/M54.5 ; ms:symptom msid:symptom\\/s1 ;
      ms:weight 1.0 ; ms:normalizedWeight 1.0 ; ms:source msid:source\\/wikimed .
  msid:assoc\\/a2 a ms:SymptomAssociation ; ms:disease msid:icd10\\/M54.5 ; ms:symptom msid:symptom\\/s2 ;
      ms:weight 0.25 ; ms:normalizedWeight 0.25 ; ms:source msid:source\\/wikimed .
  msid:assoc\\/a3 a ms:SymptomAssociation ; ms:disease msid:icd10\\/N70 ; ms:symptom msid:symptom\\/s3 ;
      ms:weight "3.5e-1"^^xsd:double ; ms:source msid:source\\/wikimed .
}}

<{GRAPH}source/rumedtop3> {{
  msid:note\\/real\\/q43dfecc a ms:ExampleNote ; ms:noteId "q43dfecc" ; ms:code msid:icd10\\/M54 ;
      ms:text "Боли в пояснице, усиливаются при наклоне." ; ms:wordCount 6 ; ms:split "train" .
}}

<{GRAPH}meta> {{
  msid:build\\/1 a ms:KnowledgeGraphBuild ; ms:contentHash "sha256:abc123" ;
      prov:generatedAtTime "2024-08-05T10:00:00Z"^^xsd:dateTime .
}}

<{GRAPH}run/r1> {{
  msid:run\\/r1 a ms:GenerationRun , prov:Activity ; ms:seed 42 ; ms:graphVersion "sha256:abc123" .
  msid:note\\/synthetic\\/n1 a ms:SyntheticNote , prov:Entity ; ms:noteId "n1" ; ms:code msid:icd10\\/M54 ;
      ms:accepted true ; ms:sampleId "s1" ; prov:wasGeneratedBy msid:generation\\/n1 .
  msid:generation\\/n1 a ms:NoteGeneration , prov:Activity ; prov:wasInformedBy msid:run\\/r1 ; ms:attempt 0 ;
      ms:usedSymptom msid:symptom\\/s1 , msid:symptom\\/s2 ; ms:usedCode msid:icd10\\/M54 .
}}
"""
)

BULK_GRAPH = NamedNode(GRAPH + "source/hsdn")


def bulk_quads(n: int = 400) -> list[Quad]:
    """A few hundred weighted associations, enough to need several INSERT DATA batches."""
    out: list[Quad] = []
    for i in range(n):
        a = NamedNode(f"{ID}assoc/hsdn/{i}")
        out += [
            Quad(a, NamedNode(MS + "disease"), NamedNode(f"{ID}icd10/M54.5"), BULK_GRAPH),
            Quad(a, NamedNode(MS + "symptom"), NamedNode(f"{ID}symptom/h{i % 37}"), BULK_GRAPH),
            Quad(a, NamedNode(MS + "weight"), Literal(f"{(i % 10) / 10:.1f}", datatype=_XSD_DECIMAL), BULK_GRAPH),
        ]
    return out


_XSD_DECIMAL = NamedNode("http://www.w3.org/2001/XMLSchema#decimal")


def load_dataset(store: Store) -> None:
    """The same data into any store: the real TBox, the TriG above and the bulk associations."""
    store.load(ONTOLOGY_DIR / "medsyn.ttl", format="ttl", graph=NamedNode(GRAPH + "ontology"))
    store.load(DATASET, format="trig")
    store.add_quads(bulk_quads())


FILLER = NamedNode("urn:medsyn:test:filler")


def dataset_store(path: Path, *, filler: int = 0) -> Path:
    """An Oxigraph store at ``path`` with the dataset, plus ``filler`` triples that make aggregates slow."""
    s = OxigraphStore(path)
    load_dataset(s)
    s.add_quads(Quad(NamedNode(f"urn:f:{i}"), NamedNode("urn:p"), Literal(str(i)), FILLER) for i in range(filler))
    s.close()
    return path


@dataclass(frozen=True)
class Case:
    name: str
    sparql: str
    union: bool = True
    bindings: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("triples_per_graph", "SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g"),
    Case(
        "code_symptoms_bound",
        PREFIXES
        + """SELECT ?symptom ?label ?weight WHERE {
  ?a ms:disease ?code ; ms:symptom ?symptom . OPTIONAL { ?a ms:weight ?weight } OPTIONAL { ?symptom rdfs:label ?label }
} ORDER BY ?symptom ?label""",
        bindings={"code": NamedNode(ID + "icd10/M54.5")},
    ),
    Case(
        "russian_labels",
        PREFIXES + 'SELECT ?c ?l WHERE { ?c skos:notation ?n ; rdfs:label ?l FILTER(langMatches(lang(?l), "ru")) }',
    ),
    Case("ask_true", PREFIXES + 'ASK { ?c skos:notation "M54.5" }'),
    Case("ask_false", PREFIXES + 'ASK { ?c skos:notation "Z99.9" }'),
    Case("construct_hierarchy", PREFIXES + "CONSTRUCT { ?c ms:parent ?p } WHERE { ?c ms:parent ?p }"),
    Case(
        "construct_tbox_with_bnodes",
        "CONSTRUCT { ?s ?p ?o } WHERE { GRAPH <" + GRAPH + "ontology> { ?s ?p ?o } }",
    ),
    Case("describe_code", PREFIXES + "DESCRIBE msid:icd10\\/M54"),
    Case(
        "optional_unbound",
        PREFIXES + "SELECT ?c ?sex WHERE { ?c a ms:ICD10Category OPTIONAL { ?c ms:sexRestriction ?sex } }",
    ),
    Case("default_graph_only", "SELECT ?s ?p ?o WHERE { ?s ?p ?o }", union=False),
    Case(
        "weight_aggregates",
        PREFIXES
        + "SELECT ?code (SUM(?w) AS ?sum) (AVG(?w) AS ?avg) (MAX(?w) AS ?max) (COUNT(DISTINCT ?s) AS ?symptoms) "
        "WHERE { ?a ms:disease ?code ; ms:symptom ?s ; ms:weight ?w } GROUP BY ?code",
    ),
    Case("path_to_chapter", PREFIXES + "SELECT ?c ?anc WHERE { ?c ms:parent+ ?anc }"),
    Case(
        "typed_bindings",
        "SELECT ?i ?f ?b ?s ?dt WHERE { BIND(DATATYPE(?f) AS ?dt) }",
        bindings={"i": 7, "f": 0.5, "b": True, "s": 'кавычки " и \\ обратная черта'},
    ),
    Case(
        "provenance_lineage",
        PREFIXES
        + """SELECT ?note ?run ?symptom ?seed WHERE {
  GRAPH ?g { ?note prov:wasGeneratedBy ?gen . ?gen prov:wasInformedBy ?run ; ms:usedSymptom ?symptom .
             ?run ms:seed ?seed } }""",
    ),
    Case("regex_cyrillic", PREFIXES + 'SELECT ?s ?l WHERE { ?s rdfs:label ?l FILTER(REGEX(?l, "^бол", "i")) }'),
    Case("empty_result", PREFIXES + 'SELECT ?x WHERE { ?x skos:notation "nothing" }'),
    Case("special_characters", PREFIXES + "SELECT ?l WHERE { msid:symptom\\/s2 rdfs:label ?l }"),
    Case("datetime_and_boolean", PREFIXES + "SELECT ?t ?ok WHERE { ?b prov:generatedAtTime ?t . ?n ms:accepted ?ok }"),
    Case("graph_names", "SELECT DISTINCT ?g WHERE { GRAPH ?g { } }", union=False),
    # A parameter used only inside a sub-SELECT is bound there, on every store.
    Case("bound_in_subquery", load_query("sampling/codes"), bindings={"source": NamedNode(ID + "source/wikimed")}),
    Case("bound_in_subquery_empty", load_query("sampling/codes"), bindings={"source": NamedNode(ID + "source/none")}),
]

# Cases whose answer is empty by design.
EMPTY_CASES = {"empty_result", "ask_false", "bound_in_subquery_empty"}


def _term(t: Any) -> str:
    # Blank node labels are minted by each store: compare their shape, not their label.
    if isinstance(t, BlankNode):
        return "_:b"
    if isinstance(t, Triple):
        return f"<< {_term(t.subject)} {_term(t.predicate)} {_term(t.object)} >>"
    return str(t)


def canonical(result: Any) -> Any:
    """A store-independent form: bool, or the sorted list of rows/triples in N-Triples syntax."""
    if isinstance(result, bool):
        return result
    out = []
    for item in result:
        if isinstance(item, dict):
            out.append(" ".join(f"?{k}={_term(v)}" for k, v in sorted(item.items())))
        else:
            out.append(f"{_term(item.subject)} {_term(item.predicate)} {_term(item.object)}")
    return sorted(out)
