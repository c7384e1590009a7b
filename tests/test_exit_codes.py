"""Exit statuses of the installed ``medsyn`` console script: 0 ok, 1 a finding, 2 bad input (medsyn.errors.ExitCode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mkg_small import build_store, write_notes

from medsyn.errors import ExitCode
from medsyn.sampling.samples import write_samples
from medsyn.testing import demo_samples
from medsyn.testing.openai_server import FakeOpenAIServer

MEDSYN = str(Path(sys.executable).with_name("medsyn"))
"""The console script pip installed next to this interpreter: what a user runs."""


def medsyn(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": "", "COLUMNS": "200"}
    return subprocess.run([MEDSYN, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    build_store(path).close()
    return path


def test_the_console_script_is_installed() -> None:
    assert Path(MEDSYN).is_file(), MEDSYN


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    r = medsyn("--version")
    assert r.returncode == 0 and r.stdout == f"medsyn {version('medsyn')}\n", r.stderr


def test_ctrl_c_says_how_to_resume_and_exits_130(store_dir: Path, tmp_path: Path) -> None:
    # Typer turned Ctrl-C into a silent exit 130: nothing told the user the run can be resumed.
    import signal
    import time

    from medsyn.testing.servers import openai_server

    write_samples(tmp_path / "s.jsonl", demo_samples(2))
    with openai_server(tmp_path / "openai.log", latency=120) as srv:
        args = ["generate", "--samples", str(tmp_path / "s.jsonl"), "--base-url", srv.base_url, "--no-progress"]
        args += ["--store", str(store_dir), "--out", str(tmp_path / "run")]
        env = {**os.environ, "OPENAI_API_KEY": "", "COLUMNS": "200"}
        # As a terminal starts it: SIGINT neither ignored nor blocked, whatever this test process inherited (both pass
        # through exec, and a process that ignores SIGINT rightly goes on running: the run then outlives the test).
        as_in_a_terminal = (
            "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
            "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); os.execv(sys.argv[1], sys.argv[1:])"
        )
        cmd = [sys.executable, "-c", as_in_a_terminal, MEDSYN, *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(1200):  # until both requests wait on the server: the command is mid-run
            if srv.stats()["in_flight"] == 2 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert srv.stats()["in_flight"] == 2
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines())
        for mask in ("SigIgn", "SigBlk"):
            assert not int(status[mask], 16) & (1 << (signal.SIGINT - 1)), f"{mask}: {status[mask]}"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert err.strip() == "interrupted: rerun the same command to resume"
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"


def test_kg_validate_and_audit_sources_show_their_progress(store_dir: Path) -> None:
    # Both ran for most of a minute on the real graph with nothing on the screen.
    from medsyn.kg.validate import check_names

    validate = medsyn("kg", "validate", "--no-reasoner", "--store", str(store_dir))
    steps = len(check_names()) + 1  # every check, then the SHACL shapes
    (line,) = [x for x in validate.stderr.splitlines() if x.startswith("kg validate ")]
    assert f" {steps}/{steps} done " in line, validate.stderr
    sources = medsyn("audit", "sources", "--json", "--store", str(store_dir))
    assert sources.returncode == 0 and json.loads(sources.stdout)  # stdout stays JSON
    (line,) = sources.stderr.strip().splitlines()
    assert line.startswith("audit sources ") and " done " in line


def test_audit_verify_exits_1_on_an_altered_or_missing_note(store_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    path = write_notes(folder)
    ok = medsyn("audit", "verify", str(folder), "--store", str(store_dir))
    assert ok.returncode == ExitCode.OK, ok.stdout + ok.stderr
    lines = path.read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[1])
    rec["response"] += " Изменено."
    path.write_text("\n".join([lines[0], json.dumps(rec, ensure_ascii=False), lines[2]]) + "\n", encoding="utf-8")
    altered = medsyn("audit", "verify", str(folder), "--store", str(store_dir))
    assert altered.returncode == ExitCode.FINDING and "altered" in altered.stdout
    path.write_text(lines[0] + "\n" + lines[2] + "\n", encoding="utf-8")
    missing = medsyn("audit", "verify", str(folder), "--store", str(store_dir), "--json")
    assert missing.returncode == ExitCode.FINDING and json.loads(missing.stdout)["missing"] == ["n2"]
    bad = medsyn("audit", "verify", str(tmp_path / "nowhere"), "--store", str(store_dir))
    assert bad.returncode == ExitCode.BAD_INPUT and bad.stderr.startswith("error:")


def test_onto_diff_exits_1_when_the_stores_differ(store_dir: Path, tmp_path: Path) -> None:
    snap = tmp_path / "before.nq"
    assert medsyn("onto", "snapshot", "--out", str(snap), "--store", str(store_dir)).returncode == 0
    same = medsyn("onto", "diff", str(snap), str(store_dir))
    assert same.returncode == ExitCode.OK and "no differences" in same.stdout
    other = tmp_path / "other"
    build_store(other).close()
    edit = medsyn("onto", "add-symptom", "M54.4", "прострел", "--source", "wikimed", "--by", "t", "--store", str(other))
    assert edit.returncode == 0, edit.stderr
    differ = medsyn("onto", "diff", str(store_dir), str(other))
    assert differ.returncode == ExitCode.FINDING and "прострел" in differ.stdout


def _finding_then_snapshot(store_dir: Path, tmp_path: Path, *, allow: bool) -> tuple[Path, Path]:
    """A pipeline whose first step finds two notes missing (audit verify, exit 1) and whose second writes a file."""
    folder = tmp_path / "run"
    path = write_notes(folder)
    path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")  # two notes missing
    after = tmp_path / "after.jsonl"
    cfg = tmp_path / "p.toml"
    cfg.write_text(
        f'[[step]]\ncommand = "audit verify"\n{"allow_finding = true" if allow else ""}\nfolder = "{folder}"\n'
        f'store = "{store_dir}"\n[[step]]\ncommand = "onto snapshot"\nout = "{after}"\nstore = "{store_dir}"\n',
        encoding="utf-8",
    )
    return cfg, after


def test_run_stops_at_the_first_failing_step_with_its_status(store_dir: Path, tmp_path: Path) -> None:
    cfg, after = _finding_then_snapshot(store_dir, tmp_path, allow=False)
    r = medsyn("run", str(cfg))
    assert r.returncode == ExitCode.FINDING, r.stdout + r.stderr
    assert "step 1/2 (audit verify) failed with exit status 1" in r.stderr
    assert not after.exists() and "step 2/2" not in r.stderr and "pipeline done" not in r.stderr


def test_allow_finding_runs_the_next_steps_and_still_exits_1(store_dir: Path, tmp_path: Path) -> None:
    cfg, after = _finding_then_snapshot(store_dir, tmp_path, allow=True)
    r = medsyn("run", str(cfg))
    assert r.returncode == ExitCode.FINDING, r.stdout + r.stderr
    assert after.exists() and "step 1 reported a finding" in r.stderr and "findings in step 1/2" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[[step]]\ncommand = "kg stats"\nallow_finding = "yes"\n', encoding="utf-8")
    r2 = medsyn("run", str(bad))
    assert r2.returncode == ExitCode.BAD_INPUT and "allow_finding must be true or false" in r2.stderr


def test_generate_without_any_accepted_note_exits_1(store_dir: Path, tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    write_samples(samples, demo_samples(3))
    with FakeOpenAIServer(latency=0.0, rates={"refusal": 1.0}) as srv:
        common = ["--samples", str(samples), "--base-url", srv.base_url, "--store", str(store_dir), "--no-progress"]
        r = medsyn("generate", *common, "--max-attempts", "1", "--out", str(tmp_path / "none"))
        assert r.returncode == ExitCode.FINDING, r.stderr
        summary = json.loads(r.stdout.splitlines()[-1])
        assert (summary["status"], summary["accepted"]) == ("incomplete", 0)
        assert "no note was accepted" in r.stderr
        srv.configure(rates={})
        ok = medsyn("generate", *common, "--out", str(tmp_path / "ok"))
        assert ok.returncode == ExitCode.OK, ok.stderr
        assert json.loads(ok.stdout.splitlines()[-1])["accepted"] == 3


def test_library_parameter_errors_are_shown_with_the_option_names(store_dir: Path, tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    write_samples(samples, demo_samples(1))
    r = medsyn("generate", "--samples", str(samples), "--max-attempts", "0", "--out", str(tmp_path / "o"))
    assert r.returncode == ExitCode.BAD_INPUT
    assert r.stderr.strip() == "error: --max-attempts must be >= 1, got 0"


def test_parameter_names_map_to_the_options_of_the_command_that_ran(tmp_path: Path) -> None:
    from medsyn.cli import option_names
    from medsyn.errors import ParameterError

    err = ParameterError("{overrides} add up to 12, more than {total} = 10; {share} stays")
    options = option_names(["sample", "--n", "3"])
    assert err.render(lambda p: options.get(p, p)) == "--override add up to 12, more than --total = 10; share stays"
    assert str(err) == "overrides add up to 12, more than total = 10; share stays"
    samples = tmp_path / "samples.jsonl"
    write_samples(samples, demo_samples(1))
    price = medsyn("generate", "--samples", str(samples), "--price", "cheap", "--out", str(tmp_path / "o"))
    assert price.returncode == ExitCode.BAD_INPUT and price.stderr.startswith("error: --price must be")


def test_a_pipeline_that_runs_itself_is_one_line_exit_2_before_any_step(tmp_path: Path) -> None:
    """It used to recurse until Python gave up: a 3,244-line RecursionError."""
    a, b, marker = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "snap.nq"
    a.write_text(f'[[step]]\ncommand = "run"\npipeline = "{b}"\n', encoding="utf-8")
    b.write_text(
        f'[[step]]\ncommand = "onto snapshot"\nout = "{marker}"\n[[step]]\ncommand = "run"\npipeline = "{a}"\n',
        encoding="utf-8",
    )
    r = medsyn("run", str(a))
    assert r.returncode == ExitCode.BAD_INPUT and "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{a} -> {b} -> {a}" in lines[0] and "cannot run itself" in lines[0], r.stderr
    assert not marker.exists()  # refused before the first step ran


def test_usage_errors_are_one_line_exit_2() -> None:
    for args, message in ((["sample", "--n", "abc"], "Invalid value for '--n'"), (["nosuch"], "No such command")):
        r = medsyn(*args)
        assert r.returncode == ExitCode.BAD_INPUT and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
        assert r.stderr.startswith("error: ") and "--help" in r.stderr
