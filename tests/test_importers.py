"""Importers on the real files: counts that would change if parsing, mapping or deduplication went wrong."""

from __future__ import annotations

import ast
import csv
import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from kg_helpers import data_with
from pyoxigraph import Quad

from medsyn.errors import InputError
from medsyn.kg.importers import SOURCES, resolve
from medsyn.kg.importers._common import BuildContext
from medsyn.kg.vocab import MS, code_iri, normalize_label, symptom_iri

WIKIMED = "medsyn/mkg/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json"
REGISTER = "mkb10_ru_minzdrav/mkb10_1.2.643.5.1.13.13.11.1005_v2.27.csv"


def _run(ctx: BuildContext, *names: str) -> dict[str, list[Quad]]:
    return {n: SOURCES[n].loader()(ctx) for n in names}


def _types(quads: list[Quad]) -> Counter[str]:
    return Counter(q.object.value.removeprefix(MS) for q in quads if q.predicate.value.endswith("#type"))


@pytest.fixture(scope="module")
def hierarchy(shared_data: Path) -> tuple[BuildContext, dict[str, list[Quad]]]:
    ctx = BuildContext(data=shared_data)
    return ctx, _run(ctx, "icd10-minzdrav", "who-icd10", "sex-restrictions")


def test_register_counts(hierarchy: tuple[BuildContext, dict[str, list[Quad]]]) -> None:
    _, out = hierarchy
    kinds = _types(out["icd10-minzdrav"])
    # 15,038 records: 22 classes, 274 blocks (incl. nested), 2,058 categories, 12,684 sub-codes.
    assert (kinds["ICD10Chapter"], kinds["ICD10Block"], kinds["ICD10Category"]) == (22, 274, 2058)
    assert kinds["ICD10Subcode"] == 12684
    parents = {q.subject.value: q.object.value for q in out["icd10-minzdrav"] if q.predicate.value == MS + "parent"}
    assert parents[code_iri("S02.00").value] == code_iri("S02.0").value
    assert parents[code_iri("C00-C14").value] == code_iri("C00-C75").value


def test_who_adds_missing_codes_and_english_titles(hierarchy: tuple[BuildContext, dict[str, list[Quad]]]) -> None:
    ctx, out = hierarchy
    who = out["who-icd10"]
    en = [q for q in who if getattr(q.object, "language", None) == "en"]
    assert len(en) == 12542
    assert sorted(c for c, info in ctx.codes.items() if info.kind == "subcode" and c.startswith("B18.") and len(c) == 6)
    assert _types(who)["ICD10Block"] == 1 and "Y35-Y36" in ctx.codes


def test_sex_restrictions_propagate_to_subcodes(hierarchy: tuple[BuildContext, dict[str, list[Quad]]]) -> None:
    _, out = hierarchy
    sex = {
        q.subject.value: q.object.value for q in out["sex-restrictions"] if q.predicate.value == MS + "sexRestriction"
    }
    assert sex[code_iri("C61").value] == "male"
    assert sex[code_iri("C53.0").value] == "female"
    assert code_iri("M54").value not in sex
    assert Counter(sex.values())["female"] > Counter(sex.values())["male"] > 100


def test_wikimed_symptom_map(shared_data: Path) -> None:
    ctx = BuildContext(data=shared_data)
    out = _run(ctx, "icd10-minzdrav", "wikimed")["wikimed"]
    kinds = _types(out)
    doc = json.loads((shared_data / WIKIMED).read_text(encoding="utf-8"))
    assert sum(len(v) for v in doc.values()) == 3079
    # Mentions that differ only in case, 'ё' or edge punctuation within one code are one association, and four
    # mentions that are bare punctuation are dropped.
    distinct = sum(len({normalize_label(s) for s in v} - {""}) for v in doc.values())
    assert kinds["SymptomAssociation"] == distinct == 3075
    # 2,554 strings: two differ only in case/spacing, one is the empty string.
    assert kinds["Symptom"] == len({normalize_label(s) for v in doc.values() for s in v} - {""}) == 2552
    assert kinds["ICD10Subcode"] == 2  # K29.6.0 and K29.6.1 become K29.60 / K29.61
    notation = {q.object.value for q in out if q.predicate.value == MS + "sourceNotation"}
    assert notation == {"K29.6.0", "K29.6.1"}
    weights = {q.object.value for q in out if q.predicate.value == MS + "normalizedWeight"}
    assert weights == {"1.0"}
    diseases = {q.object.value for q in out if q.predicate.value == MS + "disease"}
    assert len(diseases) == 258 and len({d.rsplit("/", 1)[1][:3] for d in diseases}) == 105


def test_hsdn_weights_normalised_per_code(shared_data: Path) -> None:
    ctx = BuildContext(data=shared_data)
    out = _run(ctx, "icd10-minzdrav", "hsdn")["hsdn"]
    assoc: dict[str, dict[str, str]] = {}
    for q in out:
        if q.predicate.value in (MS + "disease", MS + "normalizedWeight", MS + "weight"):
            assoc.setdefault(q.subject.value, {})[q.predicate.value.removeprefix(MS)] = q.object.value
    by_code: dict[str, list[float]] = {}
    for a in assoc.values():
        by_code.setdefault(a["disease"], []).append(float(a["normalizedWeight"]))
    assert len(by_code) == 386
    assert all(max(ws) == 1.0 and min(ws) > 0 for ws in by_code.values())
    # Independent count: distinct (code, normalised Russian translation) pairs of main_proc.csv.
    with (shared_data / "medsyn/mkg/main_proc.csv").open(encoding="utf-8", newline="") as fh:
        pairs = {
            (r["icd_10"], normalize_label(ru))
            for r in csv.DictReader(fh)
            if r["symptoms_ru"]
            for ru in ast.literal_eval(r["symptoms_ru"])
        }
    assert len(assoc) == len(pairs) < 25_615  # 25,615 listed pairs; translations shared by MeSH terms merge
    headache = symptom_iri("головная боль, цефалгия").value
    labels = {
        (q.object.value, q.object.language) for q in out if q.subject.value == headache and "label" in q.predicate.value
    }
    assert ("Headache", "en") in labels


def test_rumedtop3_train_notes(shared_data: Path) -> None:
    ctx = BuildContext(data=shared_data)
    out = _run(ctx, "icd10-minzdrav", "rumedtop3")["rumedtop3"]
    assert _types(out)["ExampleNote"] == 4690
    codes = {q.object.value for q in out if q.predicate.value == MS + "code"}
    assert len(codes) == 105
    splits = {q.object.value for q in out if q.predicate.value == MS + "split"}
    assert splits == {"train"}
    wc = [int(q.object.value) for q in out if q.predicate.value == MS + "wordCount"]
    assert sum(w >= 30 for w in wc) > 500 and min(wc) >= 1


def test_pharmacotherapydb_maps_doids(shared_data: Path) -> None:
    ctx = BuildContext(data=shared_data)
    out = _run(ctx, "icd10-minzdrav", "pharmacotherapydb")["pharmacotherapydb"]
    kinds = _types(out)
    assert kinds["Drug"] == 601
    routes = Counter(q.object.value for q in out if q.predicate.value == MS + "mappedVia")
    assert set(routes) == {"doid", "mesh", "mesh-icd10"}
    assert ctx.skipped["pharmacotherapydb"] == 177  # indications of 16 diseases with no ICD-10 route
    alz = [q for q in out if q.predicate.value == MS + "disease" and q.object == code_iri("G30")]
    assert alz, "Alzheimer's disease (DOID:10652) must map to G30"


def test_sider4_is_flagged_non_commercial(shared_data: Path) -> None:
    ctx = BuildContext(data=shared_data)
    out = _run(ctx, "icd10-minzdrav", "sider4")["sider4"]
    kinds = _types(out)
    assert kinds["SideEffectAssociation"] > 50_000 and kinds["SideEffect"] > 2_000
    flags = [q.object.value for q in out if q.predicate.value == MS + "nonCommercial"]
    assert flags == ["true"]
    freqs = [float(q.object.value) for q in out if q.predicate.value == MS + "frequency"]
    assert min(freqs) >= 0.0 and max(freqs) <= 1.0
    assert "sider4" not in resolve(None) and "sider4" in resolve(["all"])


def test_symptom_iri_ignores_case_and_spacing() -> None:
    assert symptom_iri(" Головная  боль.") == symptom_iri("головная боль")
    assert normalize_label("Ёлка") == "елка"


# ------------------------------------------------------------------------------------------------ bad input


def _real(shared_data: Path, rel: str) -> bytes:
    return (shared_data / rel).read_bytes()


def test_register_row_with_missing_field(shared_data: Path, tmp_path: Path) -> None:
    lines = _real(shared_data, REGISTER).split(b"\n")
    lines[4] = lines[4].rsplit(b";", 1)[0]  # drop the DATE field of record 4 (file line 5)
    data = data_with(shared_data, tmp_path, REGISTER, b"\n".join(lines))
    with pytest.raises(InputError, match=r"mkb10_1\.2\.643.*\.csv:5: expected 8 fields, found 7"):
        SOURCES["icd10-minzdrav"].loader()(BuildContext(data=data))


def test_register_duplicate_code(shared_data: Path, tmp_path: Path) -> None:
    raw = _real(shared_data, REGISTER).rstrip(b"\n") + b"\n"
    data = data_with(shared_data, tmp_path, REGISTER, raw + b'99999;"x";"A00.0";"dup";3;;1;\n')
    with pytest.raises(InputError, match=r":15040: field MKB_CODE: duplicate code A00.0 \(first on line 5\)"):
        SOURCES["icd10-minzdrav"].loader()(BuildContext(data=data))


def test_register_wrong_encoding(shared_data: Path, tmp_path: Path) -> None:
    raw = _real(shared_data, REGISTER).decode("utf-8").encode("cp1251", errors="replace")
    data = data_with(shared_data, tmp_path, REGISTER, raw)
    with pytest.raises(InputError, match=r"\.csv:2: not UTF-8 text"):
        SOURCES["icd10-minzdrav"].loader()(BuildContext(data=data))


def test_register_missing_header_field(shared_data: Path, tmp_path: Path) -> None:
    raw = _real(shared_data, REGISTER).replace(b"MKB_NAME", b"NAME", 1)
    data = data_with(shared_data, tmp_path, REGISTER, raw)
    with pytest.raises(InputError, match=r"\.csv:1: header lacks field\(s\) MKB_NAME"):
        SOURCES["icd10-minzdrav"].loader()(BuildContext(data=data))


def test_wikimed_duplicate_key(shared_data: Path, tmp_path: Path) -> None:
    rel = "medsyn/mkg/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json"
    raw = _real(shared_data, rel).rstrip().rstrip(b"}") + b', "G35": ["x"]}'
    data = data_with(shared_data, tmp_path, rel, raw)
    ctx = BuildContext(data=data)
    SOURCES["icd10-minzdrav"].loader()(ctx)
    with pytest.raises(InputError, match=r"equipped_with_rumedprime\.json:\d+: duplicate key 'G35'"):
        SOURCES["wikimed"].loader()(ctx)


def test_rumedtop3_bad_line(shared_data: Path, tmp_path: Path) -> None:
    rel = "rumedbench/RuMedTop3/train_v1.jsonl"
    lines = _real(shared_data, rel).split(b"\n")
    lines[9] = b'{"idx": "zz", "symptoms": "x", "code": "Q99.9"}'
    data = data_with(shared_data, tmp_path, rel, b"\n".join(lines))
    ctx = BuildContext(data=data)
    SOURCES["icd10-minzdrav"].loader()(ctx)
    with pytest.raises(InputError, match=r"train_v1\.jsonl:10: field 'code': 'Q99\.9' is not a known 3-character"):
        SOURCES["rumedtop3"].loader()(ctx)


def test_sider_bad_frequency(shared_data: Path, tmp_path: Path) -> None:
    rel = "sider4/meddra_freq.tsv.gz"
    rows = gzip.decompress(_real(shared_data, rel)).split(b"\n")[:50]
    rows[2] = b"\t".join([*rows[2].split(b"\t")[:5], b"lots", *rows[2].split(b"\t")[6:]])
    data = data_with(shared_data, tmp_path, rel, gzip.compress(b"\n".join(rows)))
    ctx = BuildContext(data=data)
    SOURCES["icd10-minzdrav"].loader()(ctx)
    with pytest.raises(InputError, match=r"meddra_freq\.tsv\.gz:3: field lower \(6th column\): not a number: 'lots'"):
        SOURCES["sider4"].loader()(ctx)


def test_missing_source_file(shared_data: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="source file not found"):
        SOURCES["rumedtop3"].loader()(BuildContext(data=tmp_path))


def test_unknown_source_name() -> None:
    with pytest.raises(InputError, match="unknown source 'wikipedia'"):
        resolve(["wikimed,wikipedia"])
