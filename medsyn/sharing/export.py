"""Shareable note sets: ``medsyn generate`` runs (and the authors' RuMedTop3-layout sets) as one RuMedTop3-compatible
dataset folder with a Hugging Face dataset card, and no real note inside.

The folder's layout and record fields: :mod:`medsyn.sharing.folder`. A record is RuMedTop3's ``{idx, code, symptoms,
split}`` (``symptoms`` = the note text, as RuMedBench code reads
it) plus ``requested_symptoms``, ``subcode``, model, run, graph version, filter scores, the ids of the real
example notes (never their text), the sources it drew on and their ``license``.

Before anything is written every note is compared with the real notes of the graph (``ms:ExampleNote``): an exact
copy (same words after normalising case and punctuation) or a word 5-gram Jaccard >= 0.8 counts as a near-copy and
is dropped, flagged (``near_copy: true``) or fails the export (``on_near_copy``).
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from medsyn.atomic import atomic_dir, check_output
from medsyn.collector import collector_paused
from medsyn.errors import ExitCode, InputError, MedsynError, ParameterError
from medsyn.evaluation.data import (
    attach_requested,
    default_requested,
    normalise_code,
    read_notes,
    read_requested,
    set_name,
)
from medsyn.evaluation.quality import overlap
from medsyn.generation.run_folder import NOTES_FILE, RUN_FILE
from medsyn.jsonl import read_json_object, read_jsonl
from medsyn.kg.notes import real_notes
from medsyn.kg.queries import run_named
from medsyn.kg.store import Store
from medsyn.kg.vocab import run_iri
from medsyn.locks import hold, lock_beside
from medsyn.sharing.folder import (
    FIELDS,
    FORMATS,
    MANIFEST,
    NEAR_COPY_JACCARD,
    NEAR_COPY_N,
    SCORE_KEYS,
    SPLIT,
    data_file,
    write_records,
)
from medsyn.sharing.privacy import PROV_FILE, check_records, dataset_id, privacy_prov, read_report
from medsyn.textsim import normalised

PRIVACY_FILE = "privacy.json"

NearCopyPolicy = Literal["drop", "flag", "fail"]
POLICIES: tuple[str, ...] = ("drop", "flag", "fail")
NON_COMMERCIAL_LICENSE = "cc-by-nc-sa-4.0"
"""SIDER 4.1's licence: a record drawing on a non-commercial source carries it."""
DEFAULT_LICENSE = "apache-2.0"
"""A record without a non-commercial source: the most restrictive of the rest (RuMedTop3's example notes are
Apache-2.0; the symptom maps are MIT, HSDN CC BY 4.0 with its attribution in the card, pharmacotherapydb CC0)."""
AUTHORS_LICENSE = "mit"
"""The authors' released synthetic sets (Hugging Face Glebkaa/MedSyn-synthetic) are marked MIT."""


class NearCopyError(MedsynError):
    """``on_near_copy="fail"`` and a note copies a real one: a finding (exit 1), nothing written."""

    exit_code = ExitCode.FINDING


@dataclass
class Source:
    """One input of an export: a generate run folder or an authors' RuMedTop3-layout file."""

    path: Path
    kind: Literal["run", "rumedtop3"]
    name: str
    records: list[dict[str, Any]]
    run: dict[str, Any] = field(default_factory=dict)
    """run.json of a generate run (empty for a RuMedTop3 file)."""
    attempts: int = 0
    """Scored notes of the run (accepted + rejected by the filter), for the acceptance rate."""


@dataclass
class ExportReport:
    out: Path
    format: str
    sources: list[Source]
    records: list[dict[str, Any]]
    real_notes: int
    exact: int
    near: int
    dropped: int
    flagged: int
    duplicates: int
    policy: str
    graph_sources: list[dict[str, Any]] = field(default_factory=list)
    command: str | None = None
    """The export's own command line, for the card's "how to reproduce"."""
    symptom_labels_real: int = 0
    """Requested-symptom labels (graph facts) that equal a whole real note (see :func:`_assert_no_real_text`)."""
    evaluation: dict[str, Any] | None = None
    """The graph-only control of an ``eval upsample`` report (its ``text_adds.json``), shown in the card."""
    privacy: dict[str, Any] | None = None
    """An ``eval privacy`` report (its ``privacy.json``), read or measured on the exported notes: card and PROV-O."""

    @property
    def per_code(self) -> dict[str, int]:
        return dict(sorted(Counter(r["code"] for r in self.records).items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "data_file": data_file(self.format),
            "records": len(self.records),
            "codes": len(self.per_code),
            "per_code": self.per_code,
            "near_copy": {
                "checked_against_real_notes": self.real_notes,
                "exact_copies": self.exact,
                "near_copies": self.near,
                "jaccard_threshold": NEAR_COPY_JACCARD,
                "shingle_words": NEAR_COPY_N,
                "policy": self.policy,
                "dropped": self.dropped,
                "flagged": self.flagged,
                "requested_symptom_labels_equal_to_a_real_note": self.symptom_labels_real,
            },
            "duplicates_skipped": self.duplicates,
            "privacy": None
            if self.privacy is None
            else {
                "goal_auc": self.privacy.get("goal_auc"),
                "sets": [
                    {k: s.get(k) for k in ("name", "worst_auc", "meets_auc_goal", "meets_pii_goal")}
                    for s in self.privacy["sets"]
                ],
                "failures": self.privacy.get("failures", []),
            },
            "inputs": [
                {
                    "path": str(s.path),
                    "kind": s.kind,
                    "name": s.name,
                    "run_id": s.run.get("run_id"),
                    "notes": len(s.records),
                    "attempts": s.attempts,
                }
                for s in self.sources
            ],
            "fields": list(FIELDS),
        }


# ------------------------------------------------------------------------------------------------ reading inputs


def read_source(path: str | Path) -> Source:
    """A generate run folder (run.json + notes.jsonl) or a RuMedTop3-layout JSONL file (the authors' sets)."""
    p = Path(path)
    if p.is_dir():
        run_file, notes_file = p / RUN_FILE, p / NOTES_FILE
        if not run_file.is_file():
            raise InputError(f"not a medsyn generate folder (no {RUN_FILE})", path=p)
        try:
            run = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise InputError("invalid JSON", path=run_file) from None
        if not isinstance(run, dict) or not isinstance(run.get("run_id"), str):
            raise InputError("no 'run_id' string", path=run_file)
        records = []
        if notes_file.is_file():
            for line, rec in read_jsonl(notes_file):
                for key in ("id", "code", "response"):
                    if not isinstance(rec.get(key), str):
                        raise InputError(f"field '{key}' must be a string", path=notes_file, line=line)
                if rec.get("accepted") is True:
                    records.append(rec)
        totals = run.get("totals") or {}
        attempts = int(totals.get("accepted", 0)) + int(totals.get("rejected", 0))
        return Source(p, "run", run["run_id"], records, run=run, attempts=attempts)
    if not p.is_file():
        raise InputError("no such file or folder", path=p)
    notes = read_notes(p)
    if notes.format != "rumedtop3":
        raise InputError("a notes file to export must be in RuMedTop3 layout (idx, symptoms, code)", path=p)
    requested = read_requested(default_requested()) if default_requested().is_file() else {}
    notes, paired = attach_requested(notes, requested) if requested else (notes, False)
    name = set_name(p)
    records = [
        {
            "id": n.id,
            "code": n.code,
            "response": n.text,
            "symptoms": list(n.requested) if paired else [],
            "model": name,
            "backend": "authors",
            "origin": p.name,
        }
        for n in notes.notes
    ]
    return Source(p, "rumedtop3", name, records, attempts=len(records))


def note_sources(
    store: Store, run_id: str, facts: Mapping[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """Note id -> the knowledge sources it drew on (name, label, licence, non-commercial flag), one entry per row of
    the source's licence facts (``facts``, from :func:`_source_facts`, read once an export), sources in IRI order.
    A source contributes when it links a sampled symptom to the sampled code or to a sub-code of it, or when it
    holds an example note (as ``audit sources`` counts)."""
    links: dict[str, list[tuple[str, str | None, str]]] = {}
    for r in run_named(store, "export/association_sources"):
        cat = str(r["category"].value) if "category" in r else None
        links.setdefault(str(r["symptom"].value), []).append((str(r["disease"].value), cat, str(r["source"].value)))
    used: dict[str, set[str]] = {}
    for r in run_named(store, "export/note_inputs", run=run_iri(run_id)):
        found = used.setdefault(str(r["noteId"].value), set())
        if "exampleSource" in r:
            found.add(str(r["exampleSource"].value))
            continue
        code = str(r["code"].value)
        found.update(src for disease, cat, src in links.get(str(r["symptom"].value), ()) if code in (disease, cat))
    return {
        nid: [f for src in sorted(srcs) for f in facts.get(src, [_source_fact(src, None, None, False)])]
        for nid, srcs in sorted(used.items())
        if srcs
    }


def _source_fact(iri: str, label: str | None, license: str | None, non_commercial: bool) -> dict[str, Any]:
    return {"source": iri.rsplit("/", 1)[-1], "label": label, "license": license, "non_commercial": non_commercial}


def _source_facts(store: Store) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in run_named(store, "export/source_licenses"):
        iri = str(r["source"].value)
        out.setdefault(iri, []).append(
            _source_fact(
                iri,
                str(r["label"].value) if "label" in r else None,
                str(r["license"].value) if "license" in r else None,
                "nonCommercial" in r and r["nonCommercial"].value == "true",
            )
        )
    return out


def _recorded_runs(store: Store) -> set[str]:
    return {str(r["run"].value) for r in run_named(store, "audit/runs")}


# ------------------------------------------------------------------------------------------------ records


def _scores(scores: Mapping[str, Any]) -> dict[str, Any] | None:
    """The filter's scores of a record in the export's fixed shape (None where its run did not measure one)."""
    if not scores:
        return None
    out: dict[str, Any] = {k: (float(scores[k]) if scores.get(k) is not None else None) for k in SCORE_KEYS}
    out["nonwords"] = [str(w) for w in scores["nonwords"]] if scores.get("nonwords") is not None else None
    return out


def _record(src: Source, rec: Mapping[str, Any], sources: list[dict[str, Any]]) -> dict[str, Any]:
    nc = any(s["non_commercial"] for s in sources)
    run = src.run
    params = run.get("identity") or {}
    return {
        "idx": str(rec["id"]),
        "code": normalise_code(str(rec["code"])),
        "symptoms": str(rec["response"]),
        "split": SPLIT,
        "requested_symptoms": [str(s) for s in rec.get("symptoms") or []],
        "subcode": rec.get("subcode"),
        "model": rec.get("model") or params.get("model"),
        "backend": rec.get("backend") or params.get("backend"),
        "adapter_hash": params.get("adapter_hash"),
        "template": rec.get("template"),
        "template_hash": rec.get("template_hash"),
        "run_id": rec.get("run_id"),
        "kg_version": rec.get("kg_version") or run.get("graph_version"),
        "scores": _scores(rec.get("scores") or {}),
        "example_ids": [
            str(i) for i in rec.get("example_ids") or ([rec["example_id"]] if rec.get("example_id") else [])
        ],
        "sources": sorted({s["source"] for s in sources}),
        "license": AUTHORS_LICENSE if src.kind == "rumedtop3" else (NON_COMMERCIAL_LICENSE if nc else DEFAULT_LICENSE),
        "non_commercial": nc,
        "near_copy": False,
        "near_copy_jaccard": 0.0,
        "origin": rec.get("origin") or "medsyn generate",
    }


# ------------------------------------------------------------------------------------------------ export


def export(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    store: Store,
    fmt: str = "jsonl",
    on_near_copy: str = "drop",
    command: Sequence[str] | None = None,
    evaluation: str | Path | None = None,
    privacy: str | Path | None = None,
    check_privacy: bool = False,
) -> ExportReport:
    """Merge ``inputs`` into one dataset folder ``out`` (replaced as a whole), after the near-copy check.

    The store must hold the provenance of every run (the one it was generated against): the records' sources and
    licences come from it, and its real notes are what the check compares with. ``evaluation`` is an ``eval
    upsample`` report folder: its graph-only control (what the text adds over the bare lists) goes into the card.
    ``privacy`` is an ``eval privacy`` report folder, or ``check_privacy`` runs its checks on the exported notes:
    the figures go into the card, ``privacy.json`` and ``prov.ttl`` (:mod:`medsyn.sharing.privacy`).
    """
    if fmt not in FORMATS:
        raise ParameterError(f"{{fmt}} must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if on_near_copy not in POLICIES:
        raise ParameterError(f"{{on_near_copy}} must be one of {', '.join(POLICIES)}, got {on_near_copy!r}")
    if not inputs:
        raise InputError("nothing to export: name at least one run folder or notes file")
    check_output(out, folder=True, inputs=inputs)
    adds = read_text_adds(Path(evaluation)) if evaluation is not None else None
    if privacy is not None and check_privacy:
        raise InputError("give --privacy REPORT or --check-privacy, not both")
    priv: dict[str, Any] | bool | None = read_report(privacy) if privacy is not None else check_privacy or None
    # Held from the first read to the swap: a second export into the same folder is refused, not both "done".
    with hold(lock_beside(Path(out)), f"output folder {out}"), collector_paused():
        return _export(
            inputs,
            Path(out),
            store=store,
            fmt=fmt,
            on_near_copy=on_near_copy,
            command=command,
            evaluation=adds,
            privacy=priv,
        )


def read_text_adds(folder: Path) -> dict[str, Any]:
    """The ``text_adds.json`` of an ``eval upsample`` report folder, checked enough to render."""
    from medsyn.evaluation.report import TEXT_ADDS_FILE

    path = folder / TEXT_ADDS_FILE
    if not path.is_file():
        raise InputError(f"no {TEXT_ADDS_FILE} here: give an `eval upsample` report folder", path=folder)
    data = read_json_object(path)
    if not isinstance(data.get("sets"), list):
        raise InputError("expected an object with a 'sets' list", path=path)
    if not data["sets"]:
        raise InputError(
            "the report ran no set beside its graph-only control (was it run with --no-control?)", path=path
        )
    return data


def _export(
    inputs: Sequence[str | Path],
    out: Path,
    *,
    store: Store,
    fmt: str,
    on_near_copy: str,
    command: Sequence[str] | None,
    evaluation: dict[str, Any] | None = None,
    privacy: dict[str, Any] | bool | None = None,
) -> ExportReport:
    sources = [read_source(p) for p in inputs]
    facts = _source_facts(store)  # the records' sources and the card's table, one read for the whole export
    records, duplicates = _collect(sources, store, facts)
    if not records:
        raise InputError("no accepted note in the inputs: nothing to export")

    real = real_notes(store)
    if not real:
        raise InputError("the store has no real notes (ms:ExampleNote) to check the export against; build the graph")
    real_norm = {normalised(t) for _, t in real}
    texts = [r["symptoms"] for r in records]
    jac = overlap(texts, [t for _, t in real], n=NEAR_COPY_N).jaccard
    exact = near = 0
    for r, j, t in zip(records, jac, texts, strict=True):
        is_exact = normalised(t) in real_norm
        r["near_copy_jaccard"] = round(float(j), 4)
        r["near_copy"] = is_exact or float(j) >= NEAR_COPY_JACCARD
        exact += is_exact
        near += r["near_copy"] and not is_exact
    copies = exact + near
    if copies and on_near_copy == "fail":
        raise NearCopyError(
            f"{copies} note(s) copy a real note ({exact} exact, {near} with word {NEAR_COPY_N}-gram Jaccard >= "
            f"{NEAR_COPY_JACCARD}); nothing written (--on-near-copy drop or flag to export anyway)"
        )
    dropped = flagged = 0
    if on_near_copy == "drop":
        dropped = copies
        records = [r for r in records if not r["near_copy"]]
    else:
        flagged = copies
    labels = _assert_no_real_text(records, real_norm)
    if not records:
        raise NearCopyError("every note copies a real note; nothing written")

    report = ExportReport(
        Path(out), fmt, sources, records, len(real), exact, near, dropped, flagged, duplicates, on_near_copy
    )
    report.graph_sources = [f for iri in sorted(facts) for f in facts[iri]]
    report.symptom_labels_real = labels
    report.command = shlex.join(command) if command else None
    report.evaluation = evaluation
    # True: measure on the notes as exported (after the near-copy policy), which is what a reviewer receives.
    report.privacy = check_records(records, out.name) if privacy is True else (privacy or None)
    from medsyn.sharing.card import lineage_query, plot_per_code, render_card

    with atomic_dir(out) as tmp:
        write_records(records, tmp / data_file(fmt), fmt)
        (tmp / MANIFEST).write_text(json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n", "utf-8")
        plot_per_code(report.per_code, tmp / "notes_per_code.png")
        first_run_note = next((r["idx"] for r in records if r["run_id"]), None)
        if first_run_note is not None:
            (tmp / "lineage.rq").write_text(lineage_query(first_run_note), encoding="utf-8")
        if report.privacy is not None:
            (tmp / PRIVACY_FILE).write_text(json.dumps(report.privacy, ensure_ascii=False, indent=1) + "\n", "utf-8")
            (tmp / PROV_FILE).write_text(privacy_prov(report.privacy, dataset_id(records)), encoding="utf-8")
        (tmp / "README.md").write_text(render_card(report), encoding="utf-8")
    return report


def _collect(
    sources: Sequence[Source], store: Store, facts: Mapping[str, list[dict[str, Any]]]
) -> tuple[list[dict[str, Any]], int]:
    """The records of every input, each note id once, and how many repeated ids were skipped."""
    known = _recorded_runs(store)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    duplicates = 0
    for src in sources:
        per_note: dict[str, list[dict[str, Any]]] = {}
        if src.kind == "run":
            if run_iri(src.name).value not in known:
                raise InputError(
                    f"run {src.name} has no provenance in this store; pass the --store it was generated with",
                    path=src.path,
                )
            per_note = note_sources(store, src.name, facts)
        for rec in src.records:
            if str(rec["id"]) in seen:
                duplicates += 1
                continue
            seen.add(str(rec["id"]))
            records.append(_record(src, rec, per_note.get(str(rec["id"]), [])))
    return records, duplicates


def _assert_no_real_text(records: Sequence[Mapping[str, Any]], real_norm: set[str]) -> int:
    """Last guard: no string field of a kept record, other than a flagged note text, equals a real note.

    ``requested_symptoms`` are symptom labels of the graph; a few of the authors' labels were cut from RuMedPrime
    notes whole (the MKG was "supplemented from real notes"), so they are counted (returned) rather than refused:
    they are published graph facts, shared with every sample.
    """
    labels = 0
    for r in records:
        labels += sum(1 for v in r["requested_symptoms"] if len(v) > 20 and normalised(v) in real_norm)
        for key, value in r.items():
            if (key == "symptoms" and r["near_copy"]) or key == "requested_symptoms":
                continue  # a flagged note: the user asked to keep and mark it
            values = value if isinstance(value, list) else [value]
            for v in values:
                if isinstance(v, str) and len(v) > 20 and normalised(v) in real_norm:
                    raise NearCopyError(f"record {r['idx']}: field {key!r} holds a real note; export refused")
    return labels
