"""``eval privacy``: membership inference tells a planted leak (synthetic notes that copy real train notes) from a set
unrelated to train, on real RuMedTop3 notes; the balanced draw, the seeded bootstrap, the report and the CLI's exit
codes; the export's card section and PROV-O."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from medsyn.evaluation.data import NoteSet, read_notes
from medsyn.evaluation.privacy import (
    PrivacyRun,
    assess_privacy,
    auc,
    balanced_draw,
    bootstrap_interval,
    membership,
)
from medsyn.evaluation.privacy_report import read_privacy, write_privacy_report
from medsyn.sharing.privacy import privacy_prov, privacy_section
from medsyn.testing.commands import MEDSYN


@pytest.fixture(scope="module")
def sets(shared_data: Path) -> dict[str, NoteSet]:
    """Members: 300 train notes of the 6 commonest codes; non-members: their dev notes; a leaky set (copies of 150
    members, shown as their own examples) and an unrelated one (other train notes of the same codes)."""
    train = read_notes(shared_data / "rumedbench/RuMedTop3/train_v1.jsonl")
    dev = read_notes(shared_data / "rumedbench/RuMedTop3/dev_v1.jsonl")
    codes = [c for c, _ in sorted(((c, train.codes.count(c)) for c in set(train.codes)), key=lambda x: -x[1])[:6]]
    rng = np.random.default_rng(0)
    members, rest = [], []
    for c in codes:
        notes = [n for n in train.notes if n.code == c]
        order = rng.permutation(len(notes))
        members += [notes[i] for i in order[:50]]
        rest += [notes[i] for i in order[50:100]]
    nonmembers = [n for n in dev.notes if n.code in codes]
    leaked = [replace(n, id=f"syn-{n.id}", text=n.text + " Со слов пациента.", shots=(n.id,)) for n in members[::2]]
    return {
        "train": replace(train, notes=members),
        "dev": replace(dev, notes=nonmembers),
        "leaky": NoteSet("leaky", Path("leaky"), "rumedtop3", leaked),
        "unrelated": NoteSet("unrelated", Path("unrelated"), "rumedtop3", rest),
    }


def test_auc_and_its_bootstrap_interval_are_seeded() -> None:
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([0.0]), np.array([1.0])) == 0.0
    m, n = np.arange(40.0), np.arange(40.0) + 10
    a = bootstrap_interval(m, n, np.random.default_rng(1), n_boot=200)
    assert a == bootstrap_interval(m, n, np.random.default_rng(1), n_boot=200)
    assert a != bootstrap_interval(m, n, np.random.default_rng(2), n_boot=200)
    assert a[0] < auc(m, n) < a[1]


def test_balanced_draw_has_the_same_code_mix_on_both_sides(sets: dict[str, NoteSet]) -> None:
    codes = set(sets["train"].codes)
    m, n = balanced_draw(sets["train"].notes, sets["dev"].notes, codes, np.random.default_rng(0))
    assert sorted(x.code for x in m) == sorted(x.code for x in n) and m
    assert len({x.id for x in m}) == len(m)  # drawn without replacement
    dev_per_code = {c: sets["dev"].codes.count(c) for c in codes}
    assert len(n) == sum(min(50, k) for k in dev_per_code.values())


def test_a_planted_leak_is_told_apart_from_an_unrelated_set(sets: dict[str, NoteSet]) -> None:
    rng = np.random.default_rng(0)
    leaky, shown = membership(sets["leaky"], sets["train"], sets["dev"], rng, rare=set(), n_boot=200)
    clean, shown_clean = membership(sets["unrelated"], sets["train"], sets["dev"], rng, rare=set(), n_boot=200)
    by = {(a.attack, a.population): a for a in leaky}
    for attack in ("char", "word", "char_code"):
        assert by[(attack, "all")].auc > 0.7 and by[(attack, "all")].low > 0.6
        assert by[(attack, "shown")].auc > 0.95  # provenance-aware: exactly the notes that were copied
    for a in clean:
        if a.population == "all":
            assert 0.4 < a.auc < 0.6 and a.low < 0.5 < a.high + 0.02
    assert shown == 150 and shown_clean == 0
    assert not any(a.population == "shown" for a in clean)


def test_report_states_goals_and_reads_back(sets: dict[str, NoteSet], tmp_path: Path) -> None:
    results, real = assess_privacy(
        [sets["leaky"], sets["unrelated"]], sets["train"], sets["dev"], 0, rare={"I10"}, n_boot=100, pii=False
    )
    run = PrivacyRun(results, real, "train", "dev", ["I10"], "test", 0, 100)
    fails = run.failures()
    assert len(fails) == 1 and fails[0].startswith("leaky: membership-inference AUC")
    write_privacy_report(tmp_path, run)
    md = (tmp_path / "privacy.md").read_text(encoding="utf-8")
    assert "**not met**" in md and "| unrelated | all |" in md and (tmp_path / "privacy.png").stat().st_size > 0
    data = read_privacy(tmp_path)
    assert [s["meets_auc_goal"] for s in data["sets"]] == [False, True] and "canaries" in data["sets"][0]
    card = "\n".join(privacy_section(data))
    assert "`leaky`: **fails the goal**" in card and "`unrelated`: highest attack AUC" in card
    assert "canary exposure: not measured" in card
    ttl = privacy_prov(data, "abc", when=None)
    from pyoxigraph import RdfFormat, Store

    store = Store()
    store.load(ttl.encode(), format=RdfFormat.TURTLE)
    q = (
        "PREFIX ms: <https://w3id.org/medsyn/ontology#> PREFIX prov: <http://www.w3.org/ns/prov#> "
        "SELECT ?set ?meets ?auc WHERE { ?a a ms:PrivacyAssessment ; prov:used ?d ; ms:assessedSet ?set ; "
        "ms:meetsGoal ?meets ; ms:attackResult [ ms:attack 'char' ; ms:population 'all' ; ms:auc ?auc ] }"
    )
    rows = {str(r["set"].value): (r["meets"].value, float(r["auc"].value)) for r in store.query(q)}
    assert rows["leaky"][0] == "false" and rows["unrelated"][0] == "true"
    assert rows["leaky"][1] == pytest.approx(data["sets"][0]["attacks"][0]["auc"])
    (tmp_path / "privacy.json").write_text("{}", encoding="utf-8")
    with pytest.raises(Exception, match=r"privacy\.json: expected an object"):
        read_privacy(tmp_path)


def _write(path: Path, notes: NoteSet) -> Path:
    path.write_text(
        "".join(
            json.dumps({"idx": n.id, "symptoms": n.text, "code": n.code}, ensure_ascii=False) + "\n"
            for n in notes.notes
        ),
        encoding="utf-8",
    )
    return path


def test_cli_exit_codes(sets: dict[str, NoteSet], tmp_path: Path) -> None:
    """A set failing the goal is a finding (exit 1, after the report); a clean set exits 0; bad input exits 2."""
    files = {k: _write(tmp_path / f"{k}.jsonl", v) for k, v in sets.items()}

    def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
        common = ["--train", files["train"], "--dev", files["dev"], "--bootstrap", "50"]
        cmd = [*MEDSYN, "eval", "privacy", *map(str, common), *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    r = cli("--synthetic", files["leaky"], "--synthetic", files["unrelated"], "--no-pii", "--out", tmp_path / "a")
    assert r.returncode == 1, r.stderr
    assert "leaky: membership-inference AUC" in r.stderr and "unrelated: 300 notes" in r.stdout
    assert (tmp_path / "a" / "privacy.md").is_file()
    r = cli("--synthetic", files["unrelated"], "--out", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    assert "personal data in" in r.stdout and "real notes (dev)" in r.stdout
    r = cli("--synthetic", tmp_path / "missing.jsonl", "--out", tmp_path / "c")
    assert r.returncode == 2 and "missing.jsonl" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_sets_figures_do_not_depend_on_the_other_sets_of_the_run(sets: dict[str, NoteSet]) -> None:
    def figures(chosen: list[NoteSet]) -> list[tuple[str, str, list[float | None]]]:
        results, _ = assess_privacy(chosen, sets["train"], sets["dev"], 7, rare={"I10"}, n_boot=50, pii=False)
        (r,) = [r for r in results if r.name == "unrelated"]
        nan_safe = [[None if np.isnan(v) else v for v in (a.auc, a.low, a.high)] for a in r.attacks]
        return [(a.attack, a.population, v) for a, v in zip(r.attacks, nan_safe, strict=True)]

    assert figures([sets["unrelated"]]) == figures([sets["leaky"], sets["unrelated"]])


def test_canary_secrets_in_a_set_fail_its_goal_and_reach_the_card(sets: dict[str, NoteSet]) -> None:
    from dataclasses import replace

    from medsyn.evaluation.canaries import Exposure
    from medsyn.evaluation.privacy import attach_canaries
    from medsyn.training.canaries import Canary

    canary = Canary("canary-0", "r0", "I10", ("головная боль",), "048213", "i", "x", "p", "Полис ", ".")
    leaked = replace(sets["unrelated"], name="leaked")
    leaked.notes = [*leaked.notes[:-1], replace(leaked.notes[-1], text=leaked.notes[-1].text + " полис 048 213")]
    chosen = [sets["unrelated"], leaked]
    results, real = assess_privacy(chosen, sets["train"], sets["dev"], 0, rare=set(), n_boot=20, pii=False)
    exposed = [Exposure("canary-0", "048213", rank=2, candidates=256, exposure=7.0, log_likelihood=-3.0)]
    attach_canaries(results, chosen, exposed, [canary], adapter="adapter/")
    assert [r.canaries["secrets_in_notes"] for r in results] == [0, 1]  # type: ignore[index]
    run = PrivacyRun(results, real, "train", "dev", [], "test", 0, 20)
    assert [f for f in run.failures() if "canary" in f] == ["leaked: 1 note(s) hold a canary's secret (goal: none)"]
    card = "\n".join(privacy_section(run.to_json()))
    assert "max 7.0 bits, mean 7.0 bits of 8.00 possible; 0 note(s)" in card
    assert "`leaked`: canaries: exposure" in card and "**fails the goal**: 1 note(s) hold" in card
