"""SIDER 4.1 (Kuhn et al. 2016): side-effect frequencies from drug labels, plus label-derived indications.

Optional and flagged ``ms:nonCommercial true`` (CC BY-NC-SA 4.0): not built unless named or ``--sources all``.
Side effects are MedDRA preferred terms (``PT`` rows; ``LLT`` rows repeat them), placebo arms are left out, and
``ms:frequency`` is the lower bound of the label's frequency (``postmarketing`` -> 0.0). When a drug–side-effect
pair has several frequencies the largest lower bound wins. STITCH ids map to DrugBank through ``indications.tsv``;
indications map to ICD-10 through the UMLS CUIs of ``main_proc.csv``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pyoxigraph import Literal, Quad

from medsyn.errors import InputError
from medsyn.kg.importers import _main_proc
from medsyn.kg.importers._common import (
    BuildContext,
    double,
    file_hash,
    read_table,
    rel,
    source_graph,
    source_quads,
    text,
)
from medsyn.kg.vocab import RDF_TYPE, association_iri, drug_iri, ms, rdfs, side_effect_iri, source_iri

NAME = "sider4"
FOLDER = "sider4"
IND_FIELDS = ["drugbank_id", "drugbank_name", "stitch_id_flat", "umls_cui_from_meddra", "meddra_name", "meddra_type"]
FREQ_FIELDS = [
    "stitch_id_flat",
    "stitch_id_stereo",
    "umls_cui_from_label",
    "placebo",
    "frequency",
    "lower",
    "upper",
    "meddra_type",
    "umls_cui_from_meddra",
    "side_effect_name",
]


def load(ctx: BuildContext) -> list[Quad]:
    folder = ctx.data / FOLDER
    ind_path, freq_path = folder / "indications.tsv", folder / "meddra_freq.tsv.gz"
    g, src = source_graph(NAME), source_iri(NAME)
    quads: list[Quad] = []
    drugs: dict[str, str] = {}
    stitch: dict[str, set[str]] = defaultdict(set)
    by_umls: dict[str, set[str]] = defaultdict(set)
    for r in _main_proc.read(ctx.data):
        for u in r.umls:
            by_umls[u].add(r.code)
    indications: set[tuple[str, str]] = set()
    for _, row in read_table(ind_path, delimiter="\t", required=IND_FIELDS):
        db = row["drugbank_id"].strip()
        drugs.setdefault(db, row["drugbank_name"].strip())
        stitch[row["stitch_id_flat"].strip()].add(db)
        cui = row["umls_cui_from_meddra"].strip()
        for code in by_umls.get(cui, ()):
            indications.add((db, code))
    for db, code in sorted(indications):
        disease, added = ctx.ensure_code(code, g)
        quads += added
        a = association_iri("indication", db, code, NAME)
        quads += [
            Quad(a, RDF_TYPE, ms("Indication"), g),
            Quad(a, ms("drug"), drug_iri(db), g),
            Quad(a, ms("disease"), disease, g),
            Quad(a, ms("mappedVia"), Literal("umls"), g),
            Quad(a, ms("source"), src, g),
        ]
    best, names = _side_effects(ctx, freq_path, stitch)
    used_drugs = {db for db, _ in best} | {db for db, _ in indications}
    for cui in sorted({c for _, c in best}):
        se = side_effect_iri(cui)
        quads += [
            Quad(se, RDF_TYPE, ms("SideEffect"), g),
            Quad(se, rdfs("label"), text(names[cui], "en"), g),
            Quad(se, ms("umlsCui"), Literal(cui), g),
        ]
    for (db, cui), (low, label) in sorted(best.items()):
        a = association_iri("side-effect", db, cui, NAME)
        quads += [
            Quad(a, RDF_TYPE, ms("SideEffectAssociation"), g),
            Quad(a, ms("drug"), drug_iri(db), g),
            Quad(a, ms("sideEffect"), side_effect_iri(cui), g),
            Quad(a, ms("frequency"), double(low), g),
            Quad(a, ms("frequencyLabel"), Literal(label), g),
            Quad(a, ms("source"), src, g),
        ]
    for db in sorted(used_drugs):
        d = drug_iri(db)
        quads += [
            Quad(d, RDF_TYPE, ms("Drug"), g),
            Quad(d, rdfs("label"), text(drugs[db], "en"), g),
            Quad(d, ms("drugbankId"), Literal(db), g),
        ]
    files = [ind_path, freq_path, _main_proc.path_of(ctx.data)]
    quads += source_quads(
        NAME,
        label="SIDER 4.1 (side effects and indications from drug labels)",
        files=[rel(p, ctx.data) for p in files],
        file_digest=file_hash(files),
    )
    return quads


def _side_effects(
    ctx: BuildContext, freq_path: Path, stitch: dict[str, set[str]]
) -> tuple[dict[tuple[str, str], tuple[float, str]], dict[str, str]]:
    """Per (drug, side effect) the largest lower frequency bound and its label, and the side effects' names."""
    best: dict[tuple[str, str], tuple[float, str]] = {}
    names: dict[str, str] = {}
    for line, row in read_table(freq_path, delimiter="\t", required=FREQ_FIELDS, header=False):
        if row["placebo"].strip() or row["meddra_type"].strip() != "PT":
            continue
        try:
            low = float(row["lower"])
        except ValueError:
            raise InputError(
                f"field lower (6th column): not a number: {row['lower']!r}", path=freq_path, line=line
            ) from None
        if not 0.0 <= low <= 1.0:
            raise InputError(f"field lower (6th column): {low} is outside [0, 1]", path=freq_path, line=line)
        dbs = stitch.get(row["stitch_id_flat"].strip())
        if not dbs:
            ctx.skip(NAME)
            continue
        cui, label = row["umls_cui_from_meddra"].strip(), row["frequency"].strip()
        names.setdefault(cui, row["side_effect_name"].strip())
        for db in dbs:
            old = best.get((db, cui))
            # Largest lower bound; ties go to the smallest label so the result does not depend on row order.
            if old is None or (low, _neg(label)) > (old[0], _neg(old[1])):
                best[db, cui] = (low, label)
    return best, names


def _neg(label: str) -> tuple[int, ...]:
    """Sort key that orders labels descending, so ``max`` picks the smallest label among equal frequencies."""
    return tuple(-ord(c) for c in label)
