"""PharmacotherapyDB v1.0 (Himmelstein et al.): physician-curated drug–disease indications, diseases as DOIDs.

DOIDs are mapped to ICD-10 by the first of these that yields codes (``ms:mappedVia`` records which):
``doid``: the DOID column of ``main_proc.csv``; ``mesh``: DOID -> MeSH disease (HSDN ``symptoms-DO.tsv``) -> the MeSH
column of ``main_proc.csv``; ``mesh-icd10``: the same MeSH id -> ``MESH_ICD10_Mapping.csv``. Indications of a disease
with no mapping are dropped and counted in the build report.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pyoxigraph import Literal, Quad

from medsyn.errors import InputError
from medsyn.kg.importers import _main_proc
from medsyn.kg.importers._common import BuildContext, file_hash, read_table, rel, source_graph, source_quads, text
from medsyn.kg.vocab import (
    RDF_TYPE,
    association_iri,
    drug_iri,
    is_valid_code,
    ms,
    normalize_code,
    rdfs,
    source_iri,
)

NAME = "pharmacotherapydb"
FOLDER = "pharmacotherapydb"
SYMPTOMS_DO = "medsyn/mkg/symptoms-DO.tsv"
MESH_ICD10 = "medsyn/mkg/MESH_ICD10_Mapping.csv"
_CATEGORIES = {"DM", "SYM", "NOT"}


def doid_mapper(ctx: BuildContext) -> tuple[dict[str, tuple[str, list[str]]], list[Path]]:
    """DOID -> (mapping route, sorted ICD-10 codes known to the hierarchy or attachable under a category)."""
    rows = _main_proc.read(ctx.data)
    by_doid: dict[str, set[str]] = defaultdict(set)
    by_mesh: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.doid:
            by_doid[r.doid].add(r.code)
        for m in r.mesh:
            by_mesh[m].add(r.code)
    sdo = ctx.data / SYMPTOMS_DO
    doid_mesh: dict[str, set[str]] = defaultdict(set)
    for _, row in read_table(sdo, delimiter="\t", required=["doid_code", "disease_id"]):
        doid_mesh[row["doid_code"].strip()].add(row["disease_id"].strip())
    mpath = ctx.data / MESH_ICD10
    mesh_icd: dict[str, set[str]] = defaultdict(set)
    for _, row in read_table(mpath, delimiter=",", required=["MESH_ID", "ICD10CM_CODE"]):
        code = normalize_code(row["ICD10CM_CODE"])
        # ICD-10-CM has codes deeper than ICD-10 (S72.001A); only those that fit the ICD-10 tree are usable.
        if is_valid_code(code) and "-" not in code and code[:3] in ctx.codes:
            mesh_icd[row["MESH_ID"].strip()].add(code)
    out: dict[str, tuple[str, list[str]]] = {}
    for doid in set(by_doid) | set(doid_mesh):
        meshes = sorted(doid_mesh.get(doid, ()))
        for route, codes in (
            ("doid", by_doid.get(doid, set())),
            ("mesh", {c for m in meshes for c in by_mesh.get(m, ())}),
            ("mesh-icd10", {c for m in meshes for c in mesh_icd.get(m, ())}),
        ):
            if codes:
                out[doid] = (route, sorted(codes))
                break
    return out, [_main_proc.path_of(ctx.data), sdo, mpath]


def load(ctx: BuildContext) -> list[Quad]:
    folder = ctx.data / FOLDER
    ind_path, drug_path = folder / "indications.tsv", folder / "drugs.tsv"
    g, src = source_graph(NAME), source_iri(NAME)
    quads: list[Quad] = []
    names: dict[str, str] = {}
    for line, row in read_table(drug_path, delimiter="\t", required=["drugbank_id", "drug"]):
        db = row["drugbank_id"].strip()
        if not db.startswith("DB"):
            raise InputError(f"field drugbank_id: not a DrugBank id: {db!r}", path=drug_path, line=line)
        if db in names:
            raise InputError(f"field drugbank_id: duplicate drug {db}", path=drug_path, line=line)
        names[db] = row["drug"]
    mapping, map_files = doid_mapper(ctx)
    seen: dict[tuple[str, str], int] = {}
    fields = ["doid_id", "drugbank_id", "disease", "drug", "category"]
    for line, row in read_table(ind_path, delimiter="\t", required=fields):
        doid, db, cat = row["doid_id"].strip(), row["drugbank_id"].strip(), row["category"].strip()
        if cat not in _CATEGORIES:
            raise InputError(f"field category: {cat!r} is not one of DM, SYM, NOT", path=ind_path, line=line)
        if (doid, db) in seen:
            raise InputError(
                f"duplicate indication {db} -> {doid} (first on line {seen[doid, db]})", path=ind_path, line=line
            )
        seen[doid, db] = line
        names.setdefault(db, row["drug"])
        if doid not in mapping:
            ctx.skip(NAME)
            continue
        route, codes = mapping[doid]
        for code in codes:
            disease, added = ctx.ensure_code(code, g)
            quads += added
            a = association_iri("indication", db, doid, code, NAME)
            quads += [
                Quad(a, RDF_TYPE, ms("Indication"), g),
                Quad(a, ms("drug"), drug_iri(db), g),
                Quad(a, ms("disease"), disease, g),
                Quad(a, ms("sourceDiseaseId"), Literal(doid), g),
                Quad(a, ms("indicationCategory"), Literal(cat), g),
                Quad(a, ms("mappedVia"), Literal(route), g),
                Quad(a, ms("source"), src, g),
            ]
    for db, name in sorted(names.items()):
        d = drug_iri(db)
        quads += [
            Quad(d, RDF_TYPE, ms("Drug"), g),
            Quad(d, rdfs("label"), text(name, "en"), g),
            Quad(d, ms("drugbankId"), Literal(db), g),
        ]
    files = [ind_path, drug_path, *map_files]
    quads += source_quads(
        NAME,
        label="PharmacotherapyDB 1.0 (drug-disease indications)",
        files=[rel(p, ctx.data) for p in files],
        file_digest=file_hash(files),
    )
    return quads
