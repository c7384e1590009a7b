"""Curator changes to the knowledge graph: add, remove, relabel and merge symptoms, relabel codes.

Every change is planned on an in-memory :class:`~medsyn.curation.changeset.Candidate`, validated there (SHACL shapes and
``sparql/checks/``), then committed as ONE SPARQL update (``DELETE DATA`` + ``INSERT DATA``) that also writes a
PROV-O record of it into ``graph/curation``. A refused change writes nothing.

Symptom IRIs stay a pure function of the normalised label (``medsyn.kg.vocab.symptom_iri``): relabelling a symptom
mints the new IRI and moves its links there; the old IRI is recorded as ``dcterms:isReplacedBy`` the new one in the
curation graph, so the lineage of notes generated before the change still resolves.
"""

from __future__ import annotations

import getpass
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from pyoxigraph import Literal, NamedNode, Quad

from medsyn.curation.changeset import Candidate
from medsyn.errors import InputError, ParameterError, StoreError, ValidationError
from medsyn.kg.queries import load_query, run_named
from medsyn.kg.store import Store, quads_to_sparql_data, to_python
from medsyn.kg.vocab import (
    CURATION_GRAPH,
    DCTERMS,
    ICD10_GRAPH,
    ID,
    RDF_TYPE,
    association_iri,
    code_iri,
    graph_iri,
    is_valid_code,
    ms,
    normalize_code,
    normalize_label,
    prov,
    rdfs,
    skos,
    source_iri,
    symptom_iri,
    xsd,
)

CURATION_SOURCE = "curation"
"""Links added without ``--source`` belong to this knowledge source, created on first use."""
STATEMENTS_LIMIT = 500
MAX_LABEL_CHARS = 1000
"""Longest symptom label a curator may write: the longest in the real data has 251 characters; a bigger one is a
pasted file, not a symptom."""
"""Changes up to this many quads keep their exact quads in the record (N-Quads text); bigger ones keep counts."""


@dataclass
class Plan:
    """A change computed on a candidate copy, not yet validated or committed."""

    operation: str
    description: str
    candidate: Candidate | None = None
    used: set[NamedNode] = field(default_factory=set)
    generated: set[NamedNode] = field(default_factory=set)
    invalidated: set[NamedNode] = field(default_factory=set)
    replaced: dict[NamedNode, NamedNode] = field(default_factory=dict)
    groups: set[tuple[NamedNode, NamedNode]] = field(default_factory=set)
    """(disease, source) groups whose normalised weights the change recomputes."""
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Result:
    """A committed (or, with ``dry_run``, a validated but unwritten) change."""

    operation: str
    description: str
    activity: NamedNode
    added: list[Quad]
    removed: list[Quad]
    committed: bool


# ------------------------------------------------------------------------------------------------ operations


def add_symptom(
    store: Store,
    code: str,
    label: str,
    *,
    weight: float = 1.0,
    source: str = CURATION_SOURCE,
    lang: str = "ru",
    by: str | None = None,
    dry_run: bool = False,
) -> Result:
    """Link a symptom (created when new) to an ICD-10 code with a weight, as asserted by a knowledge source.

    An existing link of the same code, symptom and source gets the new weight. Normalised weights of the
    code's links from that source are recomputed (weight / largest weight).
    """
    disease, notation = _require_code(store, code)
    weight = _require_weight(weight)
    _require_lang(lang)
    norm = _require_label(label)
    src, g = _require_source(store, source)
    sym = find_symptom(store, label)
    c = Candidate(store, [g])
    plan = Plan("add-symptom", "", c, used={disease, src})
    # Ask the copy, not the live store: a concurrent first change may declare the source between the copy and
    # this line, and the copy is what gets validated.
    if source == CURATION_SOURCE and not c.query("curation/knowledge_sources", s=src):
        c.add(_curation_source_quads())
        plan.generated.add(src)
    if not any(True for _ in c.after.raw.quads_for_pattern(sym, RDF_TYPE, ms("Symptom"), g)):
        c.add(
            [Quad(sym, RDF_TYPE, ms("Symptom"), g), Quad(sym, rdfs("label"), Literal(label.strip(), language=lang), g)]
        )
        plan.generated.add(sym)
    else:
        plan.used.add(sym)
    existing = [
        r["assoc"]
        for r in c.query("curation/symptom_links", symptom=sym)
        if r["disease"] == disease and r.get("source") == src
    ]
    if existing:
        for a in existing:
            have = list(c.after.raw.quads_for_pattern(a, ms("weight"), None, None))
            if not _same_weights([float(q.object.value) for q in have], [weight]):
                c.remove(have)
                c.add([Quad(a, ms("weight"), _double(weight), r_graph) for r_graph in _graphs_of(c, a)])  # type: ignore[arg-type]
            plan.used.add(a)  # type: ignore[arg-type]
        verb = "set weight of"
    else:
        a = association_iri("symptom", notation, norm, source)
        c.add(
            [
                Quad(a, RDF_TYPE, ms("SymptomAssociation"), g),
                Quad(a, ms("disease"), disease, g),
                Quad(a, ms("symptom"), sym, g),
                Quad(a, ms("weight"), _double(weight), g),
                Quad(a, ms("normalizedWeight"), _double(1.0), g),
                Quad(a, ms("source"), src, g),
            ]
        )
        plan.generated.add(a)
        verb = "link"
    _renormalize(plan, {(disease, src)})
    plan.description = f"{verb} symptom {label.strip()!r} to {notation} with weight {weight:g} (source {source})"
    return _finish(store, plan, by=by, dry_run=dry_run)


def remove_symptom(
    store: Store,
    label: str,
    *,
    code: str | None = None,
    source: str | None = None,
    by: str | None = None,
    dry_run: bool = False,
) -> Result:
    """Remove a symptom's links (all, or those of one code and/or source); the symptom goes with its last link."""
    sym = find_symptom(store, label)
    disease = _require_code(store, code)[0] if code is not None else None
    src = source_iri(source) if source is not None else None
    links = [
        r
        for r in run_named(store, "curation/symptom_links", symptom=sym)
        if (disease is None or r["disease"] == disease) and (src is None or r.get("source") == src)
    ]
    if not links:
        scope = " ".join(x for x in (f"code {code}" if code else "", f"source {source}" if source else "") if x)
        raise InputError(f"symptom {label!r} has no link{' for ' + scope if scope else ''}; nothing to remove")
    c = Candidate(store, {r["g"] for r in links})  # type: ignore[misc]
    plan = Plan("remove", "", c)
    groups = set()
    for r in links:
        c.remove(c.after.raw.quads_for_pattern(r["assoc"], None, None, r["g"]))  # type: ignore[arg-type]
        plan.invalidated.add(r["assoc"])  # type: ignore[arg-type]
        plan.used.add(r["disease"])  # type: ignore[arg-type]
        if "source" in r:
            groups.add((r["disease"], r["source"]))
    _renormalize(plan, groups)  # type: ignore[arg-type]
    _drop_unlinked_symptom(c, plan, sym)
    where = f" from {normalize_code(code)}" if code else ""
    plan.description = f"remove {len(links)} link(s) of symptom {label.strip()!r}{where}" + (
        f" (source {source})" if source else ""
    )
    return _finish(store, plan, by=by, dry_run=dry_run)


def relabel(
    store: Store, target: str, new_label: str, *, lang: str = "ru", by: str | None = None, dry_run: bool = False
) -> Result:
    """Give a code or a symptom a new label in ``lang``.

    A code keeps its IRI. A symptom whose normalised label changes moves to the IRI of the new label (see the
    module docstring); the old label is kept as ``skos:altLabel``. Relabelling onto an existing symptom is
    refused: that is a merge.
    """
    _require_label(new_label)
    _require_lang(lang)
    if is_valid_code(normalize_code(target)) and run_named(store, "curation/code", code=code_iri(target)):
        return _relabel_code(store, target, new_label, lang=lang, by=by, dry_run=dry_run)
    old = find_symptom(store, target)
    if not run_named(store, "curation/node_triples", node=old):
        raise InputError(f"{target!r} is neither an ICD-10 code nor a symptom of the graph")
    other = find_symptom(store, new_label)
    if other != old and run_named(store, "curation/node_triples", node=other):
        raise InputError(
            f"a symptom labelled {new_label!r} already exists; use `medsyn onto merge-symptoms` to merge them"
        )
    c = Candidate(store, _graphs_of_node(store, old))
    plan = Plan("relabel", f"relabel symptom {target.strip()!r} ({lang}) as {new_label.strip()!r}", c)
    same_lang = [
        q
        for q in c.after.raw.quads_for_pattern(old, rdfs("label"), None, None)
        if isinstance(q.object, Literal) and q.object.language == lang
    ]
    new = symptom_iri(new_label)
    # The IRI follows the label it was minted from; relabelling another language's label keeps the IRI.
    minted_from_lang = any(symptom_iri(str(q.object.value)) == old for q in same_lang)
    if new == old or not minted_from_lang:
        graphs = {q.graph_name for q in same_lang} or {
            q.graph_name for q in c.after.raw.quads_for_pattern(old, RDF_TYPE, None, None)
        }
        c.remove(same_lang)
        c.add(Quad(old, rdfs("label"), Literal(new_label.strip(), language=lang), g) for g in graphs)  # type: ignore[arg-type]
        c.add(Quad(old, skos("altLabel"), q.object, q.graph_name) for q in same_lang if new != old)
        plan.used.add(old)
        return _finish(store, plan, by=by, dry_run=dry_run)
    _move_symptom(store, c, plan, old, new, new_label=Literal(new_label.strip(), language=lang))
    return _finish(store, plan, by=by, dry_run=dry_run)


def merge_symptoms(store: Store, keep: str, drop: str, *, by: str | None = None, dry_run: bool = False) -> Result:
    """Merge symptom ``drop`` into ``keep``: its links move to ``keep`` (one link per code and source, the larger
    weight wins), its labels become ``skos:altLabel`` of ``keep``, and ``drop`` is removed."""
    a, b = find_symptom(store, keep), find_symptom(store, drop)
    if a == b:
        raise InputError(f"{keep!r} and {drop!r} are the same symptom (same normalised label)")
    for ref, iri in ((keep, a), (drop, b)):
        if not run_named(store, "curation/node_triples", node=iri):
            raise InputError(f"no symptom {ref!r} in the graph")
    c = Candidate(store, _graphs_of_node(store, a) | _graphs_of_node(store, b))
    plan = Plan("merge-symptoms", f"merge symptom {drop.strip()!r} into {keep.strip()!r}", c)
    _move_symptom(store, c, plan, b, a, new_label=None)
    return _finish(store, plan, by=by, dry_run=dry_run)


# ------------------------------------------------------------------------------------------------ helpers


def _relabel_code(store: Store, code: str, new_label: str, *, lang: str, by: str | None, dry_run: bool) -> Result:
    iri = code_iri(code)
    c = Candidate(store, _graphs_of_node(store, iri))
    plan = Plan("relabel", f"relabel code {normalize_code(code)} ({lang}) as {new_label.strip()!r}", c, used={iri})
    old = [
        q
        for q in c.after.raw.quads_for_pattern(iri, rdfs("label"), None, None)
        if isinstance(q.object, Literal) and q.object.language == lang
    ]
    graphs = {q.graph_name for q in old} or {ICD10_GRAPH}
    c.remove(old)
    c.add(Quad(iri, rdfs("label"), Literal(new_label.strip(), language=lang), g) for g in graphs)  # type: ignore[arg-type]
    return _finish(store, plan, by=by, dry_run=dry_run)


def _move_symptom(
    store: Store, c: Candidate, plan: Plan, old: NamedNode, new: NamedNode, *, new_label: Literal | None
) -> None:
    """Rewire every link and reference of ``old`` to ``new`` and remove ``old`` (shared by relabel and merge)."""
    plan.invalidated.add(old)
    plan.replaced[old] = new
    old_triples = list(c.after.raw.quads_for_pattern(old, None, None, None))
    labels = [q.object for q in old_triples if q.predicate in (rdfs("label"), skos("altLabel"))]
    keep_label = new_label or _label_of(c, new) or (labels[0] if labels else None)
    if keep_label is None:
        raise ValidationError(f"symptom {new.value} has no label to keep")
    # The kept symptom is described in every graph that described either symptom.
    for g in {q.graph_name for q in old_triples}:
        if not any(True for _ in c.after.raw.quads_for_pattern(new, RDF_TYPE, None, g)):
            c.add([Quad(new, RDF_TYPE, ms("Symptom"), g)])
        if new_label is not None or not any(True for _ in c.after.raw.quads_for_pattern(new, rdfs("label"), None, g)):
            c.add([Quad(new, rdfs("label"), keep_label, g)])  # type: ignore[arg-type]
        new_labels = {q.object for q in c.after.raw.quads_for_pattern(new, rdfs("label"), None, g)}
        c.add(Quad(new, skos("altLabel"), lab, g) for lab in labels if lab not in new_labels)  # type: ignore[arg-type]
    c.remove(old_triples)
    (plan.generated if new_label is not None else plan.used).add(new)
    norm = normalize_label(str(keep_label.value))  # type: ignore[union-attr]
    groups: set[tuple[NamedNode, NamedNode]] = set()
    kept = {(r["g"], r["disease"], r.get("source")): r["assoc"] for r in c.query("curation/symptom_links", symptom=new)}
    for r in c.query("curation/symptom_links", symptom=old):
        g, disease, src, assoc = r["g"], r["disease"], r.get("source"), r["assoc"]
        triples = list(c.after.raw.quads_for_pattern(assoc, None, None, g))
        c.remove(triples)
        plan.invalidated.add(assoc)
        if src is not None:
            groups.add((disease, src))
        twin = kept.get((g, disease, src))
        if twin is not None:  # a duplicate link: keep one, with the larger weight
            w_old, w_twin = _weight(c, assoc, triples), _weight(c, twin)
            if w_old > w_twin:
                c.remove(c.after.raw.quads_for_pattern(twin, ms("weight"), None, g))
                c.add([Quad(twin, ms("weight"), _double(w_old), g)])
            plan.used.add(twin)
            continue
        notation = _notation(store, disease)  # type: ignore[arg-type]
        src_name = unquote(src.value.rsplit("/", 1)[-1]) if isinstance(src, NamedNode) else ""
        fresh = association_iri("symptom", notation, norm, src_name)
        c.add(
            Quad(fresh, q.predicate, new if q.predicate == ms("symptom") else q.object, g)
            for q in triples  # type: ignore[arg-type]
        )
        kept[(g, disease, src)] = fresh
        plan.generated.add(fresh)
    # Other knowledge-graph references (not provenance history) follow the symptom.
    for r in run_named(store, "curation/incoming", node=old):
        if r["p"] == ms("symptom"):
            continue
        c.remove([Quad(r["s"], r["p"], old, r["g"])])  # type: ignore[arg-type]
        c.add([Quad(r["s"], r["p"], new, r["g"])])  # type: ignore[arg-type]
    _renormalize(plan, groups)


def _drop_unlinked_symptom(c: Candidate, plan: Plan, sym: NamedNode) -> None:
    """Remove a symptom's description from every copied graph in which no association links it any more."""
    linked = {r["g"] for r in c.query("curation/symptom_links", symptom=sym)}
    for q in list(c.after.raw.quads_for_pattern(sym, None, None, None)):
        if q.graph_name not in linked:
            c.remove([q])
    if not linked:
        plan.invalidated.add(sym)


def _renormalize(plan: Plan, groups: Iterable[tuple[NamedNode, NamedNode]]) -> None:
    """Recompute ms:normalizedWeight = weight / max weight for each (disease, source) group on the copy (and
    remember the groups: the commit recomputes them on the store itself)."""
    c = plan.candidate
    assert c is not None
    groups = set(groups)
    plan.groups |= groups
    for disease, src in groups:
        rows = c.query("curation/group_weights", disease=disease, source=src)
        weights = {(r["g"], r["assoc"]): float(to_python(r["weight"])) for r in rows if "weight" in r}
        top = max(weights.values(), default=0.0)
        for (g, assoc), w in weights.items():
            want = _double(w / top if top > 0 else 0.0)
            have = list(c.after.raw.quads_for_pattern(assoc, ms("normalizedWeight"), None, g))
            # Compare values: Oxigraph stores doubles in canonical form ("1.0" comes back as "1").
            if not _same_weights([float(q.object.value) for q in have], [float(want.value)]):
                c.remove(have)
                c.add([Quad(assoc, ms("normalizedWeight"), want, g)])  # type: ignore[arg-type]


def _finish(store: Store, plan: Plan, *, by: str | None, dry_run: bool) -> Result:
    c = plan.candidate
    assert c is not None
    if not c.added and not c.removed:
        raise ValidationError(f"{plan.description}: the graph already says so; nothing to change")
    added, removed = c.added, c.removed
    record = activity_quads(plan, curator_name(by), ended=datetime.now(UTC), added=added, removed=removed)
    activity = record[0].subject
    c.add(record)
    c.validate()
    if not dry_run:
        commit(store, removed=removed, added=[*added, *record], groups=plan.groups)
        settle_weights(store, plan.groups)
    return Result(plan.operation, plan.description, activity, added, removed, committed=not dry_run)  # type: ignore[arg-type]


def commit(
    store: Store, *, removed: list[Quad], added: list[Quad], groups: Iterable[tuple[NamedNode, NamedNode]] = ()
) -> None:
    """Apply the change as one SPARQL update request: one transaction on Oxigraph and on SPARQL 1.1 servers.

    The normalised weights of ``groups`` are recomputed by the same request from the store's own data
    (``sparql/curation/renormalize.rq``), not taken from the planning copy, which a concurrent change may have
    made stale.
    """
    parts = []
    if removed:
        parts.append("DELETE DATA {\n" + quads_to_sparql_data(removed) + "\n}")
    if added:
        parts.append("INSERT DATA {\n" + quads_to_sparql_data(added) + "\n}")
    if groups:
        parts.append(renormalize_update(groups))
    if parts:
        store.update(" ;\n".join(parts))


_EMPTY_GROUPS = "VALUES (?disease ?source) { }"
SETTLE_TRIES = 20


def renormalize_update(groups: Iterable[tuple[NamedNode, NamedNode]]) -> str:
    """``sparql/curation/renormalize.rq`` with its VALUES block listing ``groups`` (IRIs written by pyoxigraph,
    escaped N-Triples terms)."""
    text = load_query("curation/renormalize")
    rows = " ".join(f"({d} {s})" for d, s in sorted(groups, key=lambda g: (g[0].value, g[1].value)))
    assert _EMPTY_GROUPS in text
    return text.replace(_EMPTY_GROUPS, "VALUES (?disease ?source) { " + rows + " }")


def settle_weights(store: Store, groups: Iterable[tuple[NamedNode, NamedNode]]) -> None:
    """Re-run the recomputation until every group reads back consistent.

    SPARQL servers (Oxigraph among them) run concurrent updates on snapshots: two changes to one group committed
    at the same moment each computed the weights without the other's link. Whoever writes last reads the final
    state here and repairs it, so the group ends consistent whatever the interleaving.
    """
    pending = set(groups)
    for _ in range(SETTLE_TRIES):
        pending = {g for g in pending if not _consistent(store, *g)}
        if not pending:
            return
        store.update(renormalize_update(pending))
    codes = ", ".join(sorted(f"{d.value.rsplit('/', 1)[-1]}/{s.value.rsplit('/', 1)[-1]}" for d, s in pending))
    raise StoreError(
        f"normalised weights of {codes} still changing after {SETTLE_TRIES} tries (other curators at work?); "
        "run `medsyn kg validate` and repeat the change"
    )


def _consistent(store: Store, disease: NamedNode, source: NamedNode) -> bool:
    rows = run_named(store, "curation/group_weights", disease=disease, source=source)
    weights: dict[Any, float] = {}
    norms: dict[Any, list[float]] = {}
    for r in rows:
        key = (r["g"], r["assoc"])
        if "weight" in r:
            weights[key] = float(to_python(r["weight"]))
        norms.setdefault(key, [])
        if "normalized" in r and float(to_python(r["normalized"])) not in norms[key]:
            norms[key].append(float(to_python(r["normalized"])))
    top = max(weights.values(), default=0.0)
    return all(_same_weights(norms.get(k, []), [w / top if top > 0 else 0.0]) for k, w in weights.items())


WEIGHT_DIGITS = 1e-6
"""Relative tolerance of a weight read back: Virtuoso 7.2 writes doubles in query results with 6 significant
digits (2/3 reads back as 0.666667), so an exact comparison never found a group of its consistent."""


def _same_weights(have: list[float], want: list[float]) -> bool:
    """One value per link, equal to the wanted one up to what a store keeps of a double."""
    if len(have) != len(want):
        return False
    return all(math.isclose(h, w, rel_tol=WEIGHT_DIGITS) for h, w in zip(have, want, strict=True))


def curator_name(by: str | None) -> str:
    """The curator: ``--by`` or the login name of the user running the command."""
    if by is not None and not by.strip():
        raise ParameterError("{by}: empty curator name; omit it to use your login name")
    name = (by or "").strip()
    if not name:
        try:
            name = getpass.getuser()
        except (OSError, KeyError):
            name = "unknown"
    return name


def activity_quads(
    plan: Plan, agent_name: str, *, ended: datetime, added: list[Quad], removed: list[Quad]
) -> list[Quad]:
    """The PROV-O record of one change (first quad's subject is the activity)."""
    g = CURATION_GRAPH
    stamp = plan.started.isoformat()
    digest = hashlib.sha256(f"{stamp}\x1f{agent_name}\x1f{plan.description}".encode()).hexdigest()[:16]
    act = NamedNode(f"{ID}curation/{digest}")
    agent = NamedNode(f"{ID}agent/curator/{quote(agent_name, safe='-._~')}")
    quads = [
        Quad(act, RDF_TYPE, ms("CurationActivity"), g),
        Quad(act, RDF_TYPE, prov("Activity"), g),
        Quad(act, ms("operation"), Literal(plan.operation), g),
        Quad(act, ms("change"), Literal(plan.description), g),
        Quad(act, prov("wasAssociatedWith"), agent, g),
        Quad(act, prov("startedAtTime"), _datetime(plan.started), g),
        Quad(act, prov("endedAtTime"), _datetime(ended), g),
        Quad(act, ms("addedTripleCount"), Literal(str(len(added)), datatype=xsd("integer")), g),
        Quad(act, ms("removedTripleCount"), Literal(str(len(removed)), datatype=xsd("integer")), g),
        Quad(agent, RDF_TYPE, prov("Agent"), g),
        Quad(agent, rdfs("label"), Literal(agent_name), g),
    ]
    if len(added) + len(removed) <= STATEMENTS_LIMIT:
        quads.append(Quad(act, ms("addedStatements"), Literal(_nquads(added)), g))
        quads.append(Quad(act, ms("removedStatements"), Literal(_nquads(removed)), g))
    quads += [Quad(act, prov("used"), n, g) for n in sorted(plan.used - plan.generated, key=str)]
    quads += [Quad(act, prov("generated"), n, g) for n in sorted(plan.generated, key=str)]
    quads += [Quad(act, prov("invalidated"), n, g) for n in sorted(plan.invalidated, key=str)]
    quads += [Quad(o, NamedNode(DCTERMS + "isReplacedBy"), n, g) for o, n in plan.replaced.items()]
    return quads


def _nquads(quads: list[Quad]) -> str:
    return "".join(sorted(f"{q.subject} {q.predicate} {q.object} {q.graph_name} .\n" for q in quads))


def _datetime(t: datetime) -> Literal:
    return Literal(t.isoformat().replace("+00:00", "Z"), datatype=xsd("dateTime"))


def _double(value: float) -> Literal:
    # Same lexical form as the importers (repr), so equal numbers give equal triples.
    return Literal(repr(float(value)), datatype=xsd("double"))


def _require_code(store: Store, code: str) -> tuple[NamedNode, str]:
    notation = normalize_code(code)
    if not is_valid_code(notation):
        raise InputError(f"{code!r} is not an ICD-10 code (expected e.g. M54 or M54.5)")
    iri = code_iri(notation)
    rows = run_named(store, "curation/code", code=iri)
    if not rows:
        raise InputError(f"unknown ICD-10 code {notation}: it is not in the graph's hierarchy")
    return iri, str(rows[0]["notation"].value)


def _require_weight(weight: float) -> float:
    w = float(weight)
    if not math.isfinite(w) or w <= 0:
        raise InputError(f"weight {weight!r} is out of range: a symptom weight is a finite number above 0")
    return w


def _require_lang(lang: str) -> None:
    try:
        Literal("x", language=lang)
    except ValueError:
        raise InputError(f"invalid language tag {lang!r} (expected e.g. ru or en)") from None


def _require_label(label: str) -> str:
    if len(label) > MAX_LABEL_CHARS:
        raise InputError(f"symptom label of {len(label):,} characters; at most {MAX_LABEL_CHARS:,}")
    norm = normalize_label(label)
    if not norm:
        raise InputError(f"empty symptom label {label!r}")
    return norm


def _require_source(store: Store, name: str) -> tuple[NamedNode, NamedNode]:
    src = source_iri(name)
    if name != CURATION_SOURCE and not run_named(store, "curation/knowledge_sources", s=src):
        known = sorted(
            {unquote(r["s"].value.rsplit("/", 1)[-1]) for r in run_named(store, "curation/knowledge_sources")}
        )
        raise InputError(
            f"unknown knowledge source {name!r} (known: {', '.join(known) or 'none'}; "
            f"omit --source to use the curator source {CURATION_SOURCE!r})"
        )
    return src, graph_iri("source", name)


def _curation_source_quads() -> list[Quad]:
    src, g = source_iri(CURATION_SOURCE), graph_iri("source", CURATION_SOURCE)
    return [
        Quad(src, RDF_TYPE, ms("KnowledgeSource"), g),
        Quad(src, rdfs("label"), Literal("Curator additions"), g),
        Quad(src, ms("nonCommercial"), Literal("false", datatype=xsd("boolean")), g),
    ]


def find_symptom(store: Store, text: str) -> NamedNode:
    """A symptom by IRI, or by any of its labels (same normal form); the IRI the label would mint when none.

    A symptom's IRI follows one label (the one it was built from), so an English or alternative label is looked
    up; two different symptoms answering to the label is an error naming both.
    """
    t = text.strip()
    if t.startswith(ID + "symptom/"):
        return NamedNode(t)
    norm = _require_label(t)
    minted = symptom_iri(t)
    if run_named(store, "curation/node_triples", node=minted):
        return minted
    found = {
        r["symptom"]
        for r in run_named(store, "curation/symptom_by_label", text=t)
        if normalize_label(str(r["label"].value)) == norm
    }
    if len(found) > 1:
        names = ", ".join(sorted(f.value for f in found))  # type: ignore[union-attr]
        raise InputError(f"label {t!r} names several symptoms ({names}); pass the IRI")
    return found.pop() if found else minted  # type: ignore[return-value]


def _graphs_of_node(store: Store, node: NamedNode) -> set[NamedNode]:
    graphs = {r["g"] for r in run_named(store, "curation/node_triples", node=node)}
    graphs |= {r["g"] for r in run_named(store, "curation/symptom_links", symptom=node)}
    graphs |= {r["g"] for r in run_named(store, "curation/incoming", node=node)}
    return graphs  # type: ignore[return-value]


def _graphs_of(c: Candidate, node: NamedNode) -> set[NamedNode]:
    return {q.graph_name for q in c.after.raw.quads_for_pattern(node, RDF_TYPE, None, None)}  # type: ignore[misc]


def _label_of(c: Candidate, node: NamedNode) -> Literal | None:
    for q in c.after.raw.quads_for_pattern(node, rdfs("label"), None, None):
        return q.object  # type: ignore[return-value]
    return None


def _weight(c: Candidate, assoc: NamedNode, triples: list[Quad] | None = None) -> float:
    quads = triples if triples is not None else list(c.after.raw.quads_for_pattern(assoc, ms("weight"), None, None))
    values = [float(q.object.value) for q in quads if q.predicate == ms("weight")]
    return max(values, default=0.0)


def _notation(store: Store, disease: NamedNode) -> str:
    rows = run_named(store, "curation/code", code=disease)
    return str(rows[0]["notation"].value) if rows else unquote(disease.value.rsplit("/", 1)[-1])
