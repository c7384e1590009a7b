"""The ``eval privacy`` report: ``privacy.md`` with a plot of the attack AUCs, and ``privacy.json`` for ``export
--privacy`` (the dataset card and the export's PROV-O read their figures from it)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medsyn.atomic import atomic_write_text
from medsyn.errors import InputError
from medsyn.evaluation.privacy import ATTACKS, POPULATIONS, AttackResult, PrivacyRun
from medsyn.evaluation.report import markdown_table, pyplot, save_figure
from medsyn.jsonl import read_json_object

PRIVACY_FILE = "privacy.json"


def interval(a: AttackResult | dict[str, Any]) -> str:
    """``0.512 (0.48–0.55)``; a dash for a population too small to measure."""
    d = a if isinstance(a, dict) else {"auc": a.auc, "low": a.low, "high": a.high}
    if d["auc"] is None or math.isnan(d["auc"]):
        return "–"
    if d["low"] is None or math.isnan(d["low"]):
        return f"{d['auc']:.3f}"
    return f"{d['auc']:.3f} ({d['low']:.3f}–{d['high']:.3f})"


def attack_rows(sets: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Rows of (set, population, members/non-members, one AUC column per attack), from ``privacy.json`` sets."""
    header = ["set", "population", "members / non-members", *[f"AUC: {a}" for a in ATTACKS]]
    rows = []
    for s in sets:
        for pop in POPULATIONS:
            found = {a["attack"]: a for a in s["attacks"] if a["population"] == pop}
            if not found:
                continue
            first = next(iter(found.values()))
            rows.append(
                [
                    s["name"],
                    pop,
                    f"{first['members']} / {first['nonmembers']}",
                    *[interval(found[a]) if a in found else "–" for a in ATTACKS],
                ]
            )
    return header, rows


def pii_rows(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Personal-data rates: the real notes first, then each set, with the kinds found."""
    header = ["notes", "scanned", "with personal data", "kinds (notes)", "goal: ≤ real rate"]
    rows = []
    real = data.get("real_pii")
    scans = ([("real notes (dev)", real, None)] if real else []) + [
        (s["name"], s["pii"], s["meets_pii_goal"]) for s in data["sets"] if s.get("pii")
    ]
    for name, p, ok in scans:
        kinds = ", ".join(f"{k} {v}" for k, v in p["per_kind"].items()) or "none"
        verdict = "–" if ok is None else ("met" if ok else "**not met**")
        rows.append(
            [
                name,
                str(p["n"]),
                f"{p['notes_with_pii']} ({100 * p['notes_with_pii'] / max(p['n'], 1):.2f}%)",
                kinds,
                verdict,
            ]
        )
    return header, rows


def _plot(run: PrivacyRun, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(run.results)), 3.6))
    width = 0.8 / len(ATTACKS)
    for k, attack in enumerate(ATTACKS):
        xs, ys, err = [], [], []
        for i, r in enumerate(run.results):
            a = r.auc_of(attack)
            if a is None or np.isnan(a.auc):
                continue
            xs.append(i + (k - (len(ATTACKS) - 1) / 2) * width)
            ys.append(a.auc)
            lo, hi = (a.low, a.high) if not np.isnan(a.low) else (a.auc, a.auc)
            err.append((a.auc - lo, hi - a.auc))
        ax.bar(xs, ys, width, yerr=np.array(err).T if err else None, capsize=2, label=attack)
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.axhline(run.goal_auc, color="tab:red", ls="--", lw=0.8, label=f"goal {run.goal_auc}")
    ax.set_xticks(range(len(run.results)), [r.name for r in run.results], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("membership-inference AUC")
    ax.set_ylim(0.3, 1.0)
    ax.set_title("Attack AUC, train vs dev balanced per code (95 % bootstrap)", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def canary_verdict(c: Mapping[str, Any] | None) -> str:
    """One line on a set's canaries: the generator's exposure and the secrets found in the set's notes."""
    if not c:
        return "canary exposure: not measured (a fine-tuned generator's canaries: `medsyn eval privacy --adapter`)."
    exposure = (
        "exposure not measured (no adapter given)"
        if c.get("max_exposure_bits") is None
        else f"exposure of {c['canaries']} canaries under `{c.get('adapter')}`: max {c['max_exposure_bits']} bits, "
        f"mean {c['mean_exposure_bits']} bits of {math.log2(c['candidates']):.2f} possible"
    )
    found = c.get("secrets_in_notes", 0)
    scan = "**fails the goal**: " if found else ""
    return f"canaries: {exposure}; {scan}{found} note(s) hold a canary's secret (goal: none)."


def write_privacy_report(out: Path, run: PrivacyRun) -> Path:
    """``out/privacy.md``, ``out/privacy.json`` and ``out/privacy.png``."""
    out.mkdir(parents=True, exist_ok=True)
    data = run.to_json()
    atomic_write_text(out / PRIVACY_FILE, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    _plot(run, out / "privacy.png")
    header, rows = attack_rows(data["sets"])
    p_header, p_rows = pii_rows(data)
    verdicts = [
        [
            r.name,
            str(r.n),
            f"{r.worst_auc:.3f}",
            "met" if r.meets_auc(run.goal_auc) else "**not met**",
            str(r.shown) if r.shown else "– (no provenance)",
            f"{r.wall_s:.0f} s",
        ]
        for r in run.results
    ]
    lines = [
        "# Privacy: membership inference and personal data",
        "",
        f"Members: real train notes (`{run.train}`); non-members: held-out real notes (`{run.dev}`), drawn per code "
        "as many of each as the scarcer side has, within the codes the set covers. A real note's score is its "
        "highest similarity to a synthetic note; AUC 0.5 means the synthetic set tells an attacker nothing about "
        f"which real notes were used. 95 % intervals: {run.n_boot} bootstrap resamples, seed {run.seed}. "
        f"Rare codes: {run.rare_rule}.",
        "",
        *[f"- `{a}`: {d}" for a, d in ATTACKS.items()],
        *[f"- population `{p}`: {d}" for p, d in POPULATIONS.items()],
        "",
        f"Goal: no attack above AUC {run.goal_auc} on the whole draw (`all`).",
        "",
        markdown_table(["set", "notes", "highest AUC (all)", "goal", "real notes shown", "time"], verdicts),
        "",
        markdown_table(header, rows),
        "",
        "![attack AUC](privacy.png)",
        "",
        "## Personal data",
        "",
        "Regexes for dates (RuMedTop3's `*ДАТА*` mask is no date), phone numbers, passport, SNILS, OMS policy and "
        "INN numbers, e-mail addresses and record numbers; natasha NER for person, place and organisation names, "
        "kept when pymorphy3's dictionary knows a word of the span as such a name (medsyn/generation/pii.py).",
        "",
        markdown_table(p_header, p_rows) if p_rows else "Not scanned (`--no-pii`).",
        "",
        "## Canaries",
        "",
        *[f"- `{s['name']}`: {canary_verdict(s.get('canaries'))}" for s in data["sets"]],
        "",
    ]
    if data["failures"]:
        lines += ["## Goals not met", "", *[f"- {f}" for f in data["failures"]], ""]
    if run.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in run.notes], ""]
    path = out / "privacy.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def read_privacy(folder: Path) -> dict[str, Any]:
    """The ``privacy.json`` of an ``eval privacy`` report folder, checked enough to render."""
    path = folder / PRIVACY_FILE if folder.is_dir() else folder
    if not path.is_file():
        raise InputError(f"no {PRIVACY_FILE} here: give an `eval privacy` report folder", path=folder)
    data = read_json_object(path)
    if not isinstance(data.get("sets"), list) or not data["sets"]:
        raise InputError("expected an object with a non-empty 'sets' list", path=path)
    for i, s in enumerate(data["sets"]):
        if not isinstance(s, dict) or not isinstance(s.get("attacks"), list) or "worst_auc" not in s:
            raise InputError(f"sets[{i}]: expected 'attacks' and 'worst_auc'", path=path)
    return data
