"""The privacy figures of an export: run ``eval privacy``'s checks on the exported notes (or read a report), and
write them where a reviewer looks without running anything: the card's privacy section and ``prov.ttl``, one
``ms:PrivacyAssessment`` activity (PROV-O) per assessed set with its attack AUCs and personal-data rates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medsyn.evaluation.report import markdown_table
from medsyn.kg.vocab import ID, MS, PROV, RDFS, XSD

PROV_FILE = "prov.ttl"


def check_records(records: Sequence[Mapping[str, Any]], name: str, *, seed: int = 0) -> dict[str, Any]:
    """``eval privacy`` on exported records (RuMedTop3 train as members, dev as non-members): its JSON report."""

    from medsyn.evaluation.data import Note, NoteSet, default_dev, default_train, display_path, read_notes
    from medsyn.evaluation.privacy import PrivacyRun, assess_privacy
    from medsyn.evaluation.upsampling import rare_codes

    train, dev = read_notes(default_train()), read_notes(default_dev())
    known = set(train.codes)
    notes = [
        Note(str(r["idx"]), str(r["symptoms"]), str(r["code"]), name, i, shots=tuple(r.get("example_ids") or ()))
        for i, r in enumerate(records, start=1)
        if r["code"] in known
    ]
    skipped = len(records) - len(notes)
    rare = rare_codes(train.codes)
    results, real = assess_privacy([NoteSet(name, Path(name), "export", notes)], train, dev, seed, rare=rare)
    run = PrivacyRun(
        results,
        real,
        display_path(train.path),
        display_path(dev.path),
        sorted(rare),
        "train frequency ≤ the 0.25 quantile of per-code train counts",
        seed,
        1000,
        notes=[f"{skipped} notes of codes absent from RuMedTop3 train were not assessed"] if skipped else [],
    )
    return run.to_json()


def privacy_section(data: Mapping[str, Any] | None) -> list[str]:
    """The card's privacy section: attack AUCs with intervals, personal-data rates, and each goal met or not."""
    from medsyn.evaluation.privacy_report import attack_rows, canary_verdict, pii_rows

    lines = ["## Privacy: membership inference and personal data", ""]
    if not data:
        return [
            *lines,
            "No privacy assessment was attached to this export: export again with `--check-privacy`, or run",
            "`medsyn eval privacy --synthetic <this folder>` and export with `--privacy <its report folder>`.",
            "",
        ]
    goal = data.get("goal_auc", 0.55)
    header, rows = attack_rows(data["sets"])
    p_header, p_rows = pii_rows(data)
    verdicts = []
    for s in data["sets"]:
        auc = s.get("worst_auc")
        auc_text = "not measured" if auc is None else f"{auc:.3f}"
        if s.get("meets_auc_goal"):
            verdicts.append(f"- `{s['name']}`: highest attack AUC {auc_text} ≤ {goal}: the goal is met.")
        else:
            verdicts.append(f"- `{s['name']}`: **fails the goal**: highest attack AUC {auc_text} > {goal}.")
        if s.get("meets_pii_goal") is False:
            verdicts.append(f"- `{s['name']}`: **fails the goal**: more notes with personal data than the real notes.")
        verdicts.append(f"- `{s['name']}`: {canary_verdict(s.get('canaries'))}")
    return [
        *lines,
        "Can an attacker holding only this set tell which real notes the generator used? Members: real train notes",
        f"(`{data.get('train', '?')}`); non-members: held-out real notes (`{data.get('dev', '?')}`), the same count",
        "per code. A real note's score is its highest similarity to a synthetic note; AUC 0.5 = no signal. 95 %",
        f"bootstrap intervals ({data.get('bootstrap', '?')} resamples, seed {data.get('seed', '?')}).",
        f"Goal: AUC ≤ {goal}.",
        "",
        *verdicts,
        "",
        markdown_table(header, rows),
        "",
        *([markdown_table(p_header, p_rows), ""] if p_rows else []),
        f"The same figures as PROV-O: `{PROV_FILE}` (one `ms:PrivacyAssessment` per set).",
        "",
    ]


def _lit(value: Any) -> str:
    if isinstance(value, bool):
        return f'"{str(value).lower()}"^^<{XSD}boolean>'
    if isinstance(value, int):
        return f'"{value}"^^<{XSD}integer>'
    if isinstance(value, float):
        return f'"{value!r}"^^<{XSD}double>'
    return json.dumps(str(value))  # ASCII with \\u escapes: a valid Turtle string


def privacy_prov(data: Mapping[str, Any], dataset_id: str, *, when: datetime | None = None) -> str:
    """Turtle: the export as a ``prov:Entity`` and one ``ms:PrivacyAssessment`` per set that ``prov:used`` it."""
    ended = (when or datetime.now(UTC)).isoformat(timespec="seconds")
    dataset = f"<{ID}export/{dataset_id}>"
    out = [
        f"@prefix ms: <{MS}> .",
        f"@prefix prov: <{PROV}> .",
        f"@prefix rdfs: <{RDFS}> .",
        "",
        f"{dataset} a prov:Entity ; rdfs:label {_lit('MedSyn synthetic note export')} .",
    ]
    real = data.get("real_pii") or {}
    for s in data["sets"]:
        key = hashlib.sha256(f"{dataset_id}/{s['name']}".encode()).hexdigest()[:16]
        props = [
            "a ms:PrivacyAssessment , prov:Activity",
            f"prov:used {dataset}",
            f'prov:endedAtTime "{ended}"^^<{XSD}dateTime>',
            f"rdfs:label {_lit('membership inference and personal data: ' + str(s['name']))}",
            f"ms:assessedSet {_lit(s['name'])}",
            f"ms:goalAuc {_lit(float(data.get('goal_auc', 0.55)))}",
            f"ms:meetsGoal {_lit(bool(s.get('meets_auc_goal')) and s.get('meets_pii_goal') is not False)}",
        ]
        if s.get("worst_auc") is not None:
            props.append(f"ms:highestAttackAuc {_lit(float(s['worst_auc']))}")
        if s.get("pii"):
            props.append(f"ms:piiRate {_lit(float(s['pii']['rate']))}")
        if real:
            props.append(f"ms:realPiiRate {_lit(float(real['rate']))}")
        for a in s["attacks"]:
            fields = [
                "a ms:AttackResult",
                f"ms:attack {_lit(a['attack'])}",
                f"ms:population {_lit(a['population'])}",
                f"ms:memberCount {_lit(int(a['members']))}",
                f"ms:nonMemberCount {_lit(int(a['nonmembers']))}",
            ]
            fields += [
                f"ms:{p} {_lit(float(a[k]))}"
                for p, k in (("auc", "auc"), ("aucLow", "low"), ("aucHigh", "high"))
                if a.get(k) is not None
            ]
            props.append("ms:attackResult [ " + " ; ".join(fields) + " ]")
        out += ["", f"<{ID}privacy/{key}>\n    " + " ;\n    ".join(props) + " ."]
    return "\n".join(out) + "\n"


def dataset_id(records: Sequence[Mapping[str, Any]]) -> str:
    """A content id of the exported notes (ids and texts), so the same notes get the same IRI."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r['idx']}\t{r['symptoms']}\n".encode())
    return h.hexdigest()[:16]


def read_report(path: str | Path) -> dict[str, Any]:
    from medsyn.evaluation.privacy_report import read_privacy

    return read_privacy(Path(path))
