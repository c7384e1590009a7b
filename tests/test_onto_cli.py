"""The `medsyn onto` and `medsyn audit` commands on an on-disk store: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from mkg_small import build_store, write_notes
from typer.testing import CliRunner

from medsyn.cli.audit import app as audit_app
from medsyn.cli.curation import app as onto_app
from medsyn.testing.commands import MEDSYN

runner = CliRunner()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    build_store(path).close()
    return path


def onto(store_dir: Path, *args: str) -> tuple[int, str]:
    r = runner.invoke(onto_app, [*args, "--store", str(store_dir)], catch_exceptions=False)
    return r.exit_code, r.output


def audit(store_dir: Path, *args: str) -> tuple[int, str]:
    r = runner.invoke(audit_app, [*args, "--store", str(store_dir)], catch_exceptions=False)
    return r.exit_code, r.stdout  # stderr carries progress lines; the results are on stdout


def medsyn(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDSYN_STORE": str(store), "COLUMNS": "200"}
    return subprocess.run([*MEDSYN, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_curate_check_history_and_diff(store_dir: Path, tmp_path: Path) -> None:
    snap = tmp_path / "before.nq"
    assert onto(store_dir, "snapshot", "--out", str(snap))[0] == 0
    code, out = onto(
        store_dir, "add-symptom", "M54.4", "прострел", "--weight", "2", "--source", "wikimed", "--by", "ann"
    )
    assert code == 0 and "committed" in out and "прострел" in out
    code, out = onto(store_dir, "check", "--json")
    assert code == 0 and json.loads(out)["counts"]["near_duplicate_groups"] == 2
    code, out = onto(store_dir, "merge-symptoms", "головная боль", "головные боли", "--by", "ann")
    assert code == 0
    code, out = onto(store_dir, "history", "--json")
    assert [r["operation"] for r in json.loads(out)] == ["merge-symptoms", "add-symptom"]
    assert {r["agentName"] for r in json.loads(out)} == {"ann"}
    r = runner.invoke(onto_app, ["diff", str(snap), str(store_dir), "--json"])
    assert r.exit_code == 1  # like diff(1): 1 when the versions differ
    counts = json.loads(r.output)["counts"]
    assert (counts["added_links"], counts["removed_symptoms"]) == (2, 1)
    r = runner.invoke(onto_app, ["diff", str(snap), str(store_dir)])
    assert "прострел" in r.output and "added links" in r.output
    assert onto(store_dir, "restore", str(snap), "--by", "ann")[0] == 0
    r = runner.invoke(onto_app, ["diff", str(snap), str(store_dir)])
    assert r.exit_code == 0 and "no differences" in r.output


def test_dry_run_and_owl_export(store_dir: Path, tmp_path: Path) -> None:
    code, out = onto(store_dir, "relabel", "R51", "Цефалгия", "--dry-run")
    assert code == 0 and "dry run" in out
    owl = tmp_path / "kg.owl"
    assert onto(store_dir, "export-owl", "--out", str(owl))[0] == 0
    assert owl.read_text(encoding="utf-8").startswith("<?xml")
    code, out = onto(store_dir, "import-owl", str(owl))
    assert code == 0 and "no change" in out


def test_audit_commands(store_dir: Path, tmp_path: Path) -> None:
    code, out = audit(store_dir, "note", "n2")
    assert code == 0
    for part in ("gpt-4", "paper_ru", "G43.0", "HSDN", "q2", "sha256:graph-v1"):
        assert part in out
    folder = tmp_path / "run"
    write_notes(folder)
    assert audit(store_dir, "verify", str(folder))[0] == 0
    code, out = audit(store_dir, "run", "run-test-1", "--json")
    assert code == 0 and json.loads(out)["acceptance_rate"] == pytest.approx(2 / 3)
    code, out = audit(store_dir, "run")
    assert code == 0 and "run-test-1" in out
    code, out = audit(store_dir, "sources", "--json")
    assert {r["label"] for r in json.loads(out)} == {"WikiMed symptom map", "HSDN", "RuMedTop3 train"}


def test_tampered_set_fails_verify_with_exit_1(store_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    path = write_notes(folder)
    path.write_text(path.read_text(encoding="utf-8").replace("светобоязнь", "слезотечение"), encoding="utf-8")
    code, out = audit(store_dir, "verify", str(folder))
    assert code == 1 and "altered" in out and "n3" in out


def test_user_errors_are_one_line_and_change_nothing(store_dir: Path) -> None:
    from medsyn.kg.store import OxigraphStore

    with OxigraphStore(store_dir) as s:
        before = s.dump(format="nq")
    for args, message in (
        (["onto", "add-symptom", "M99.9", "сыпь"], "error: unknown ICD-10 code M99.9"),
        (["onto", "add-symptom", "M54.5", "сыпь", "--weight", "-2"], "out of range"),
        (["onto", "merge-symptoms", "тошнота", "рвота"], "no symptom 'рвота'"),
        (["onto", "merge-symptoms", "тошнота", "Тошнота."], "are the same symptom"),
        (["onto", "remove", "сыпь"], "has no link"),
        (["onto", "add-symptom", "M54.5", "сыпь", "--source", "nope"], "unknown knowledge source 'nope'"),
        (["onto", "add-symptom", "M54.5", "сыпь", "--by", ""], "--by: empty curator name"),
        (["audit", "note", "nope"], "no provenance for note 'nope'"),
        (["onto", "restore", "/nonexistent.nq"], "snapshot file not found"),
    ):
        r = medsyn(*args, store=store_dir)
        assert r.returncode == 2, args  # bad input, not a finding (these exited 1)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], r.stderr
        assert "Traceback" not in r.stderr
    with OxigraphStore(store_dir) as s:
        assert s.dump(format="nq") == before
