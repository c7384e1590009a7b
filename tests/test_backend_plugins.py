"""Adding a backend is one file and one registry line (or one entry point of an installed distribution):
``tests/canned_backend.py`` runs ``generate`` end to end through the library, and through the CLI as a plugin
distribution built in a temporary folder (a ``.dist-info`` with its ``entry_points.txt``, as pip writes it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from medsyn.errors import InputError
from medsyn.generation import backends
from medsyn.generation.backends import available_backends, backend_options, default_template, get_backend
from medsyn.generation.engine import generate
from medsyn.generation.run_folder import NOTES_FILE, RUN_FILE
from medsyn.kg.store import OxigraphStore
from medsyn.sampling.samples import write_samples
from medsyn.testing import demo_samples
from medsyn.testing.commands import MEDSYN

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


def notes(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / NOTES_FILE).read_text(encoding="utf-8").splitlines()]


def test_a_registered_backend_from_a_test_module_runs_generate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(backends._REGISTRY, "canned", "canned_backend:CannedBackend")  # the one registry line
    assert "canned" in available_backends() and default_template("canned") == "paper_ru"
    assert list(backend_options("canned")) == ["model", "signature", "repeat"]
    with pytest.raises(InputError, match=r"^the canned backend has no option 'signatur'; did you mean 'signature'\?$"):
        get_backend("canned", signatur="x")
    be = get_backend("canned", signature="Подпись врача.", repeat="2")  # text is read by the declared type
    summary = generate(demo_samples(4), tmp_path / "o", store=OxigraphStore.in_memory(), backend=be)
    assert (summary.accepted, summary.failed) == (4, 0)
    got = notes(tmp_path / "o")
    assert len(got) == 4 and all(n["response"].endswith("Подпись врача. Подпись врача.") for n in got)
    run = json.loads((tmp_path / "o" / RUN_FILE).read_text(encoding="utf-8"))
    assert run["identity"]["backend"] == "canned" and run["parameters"]["backend_options"]["repeat"] == 2


def _distribution(site: Path, dist: str, entry_points: dict[str, str], module: Path | None = None) -> None:
    """A distribution as pip installs it: its modules and a ``.dist-info`` with metadata and entry points."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[medsyn.backends]\n{lines}", encoding="utf-8")
    if module is not None:
        shutil.copy(module, site / module.name)


def _medsyn(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "COLUMNS": "200"}
    return subprocess.run([*MEDSYN, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_a_plugin_distribution_is_listed_and_generates_from_the_cli(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _distribution(site, "medsyn-canned", {"canned": "canned_backend:CannedBackend"}, HERE / "canned_backend.py")
    listed = _medsyn(site, "backends", "--json")
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "canned")
    assert row["origin"] == "plugin (medsyn-canned 0.1)" and row["default_template"] == "paper_ru"
    assert [(o["name"], o["type"], o["default"]) for o in row["options"]][1:] == [
        ("signature", "str", ""),
        ("repeat", "int", 1),
    ]
    assert "canned: model, signature, repeat" in " ".join(_medsyn(site, "generate", "--help").stdout.split())
    table = _medsyn(site, "backends")
    assert table.returncode == 0 and "a sentence added to every note." in table.stdout
    assert "max_input_tokens" in table.stdout and "plugin (medsyn-canned 0.1)" in table.stdout

    samples, store = tmp_path / "samples.jsonl", tmp_path / "store"
    write_samples(samples, demo_samples(3))
    OxigraphStore(store).close()
    run = ["generate", "--backend", "canned", "--samples", str(samples), "--store", str(store), "--no-progress"]
    r = _medsyn(site, *run, "--out", str(tmp_path / "o"), "-o", "signature=Врач.", "--option", "repeat=3")
    assert r.returncode == 0, r.stderr
    assert [n["response"].endswith("Врач. Врач. Врач.") for n in notes(tmp_path / "o")] == [True] * 3

    for bad, line in [
        (["-o", "repaet=2"], "error: the canned backend has no option 'repaet'; did you mean 'repeat'?"),
        (["-o", "repeat=many"], "error: repeat (int): expected an integer, got 'many'"),
        (
            ["--concurrency", "2"],
            "error: the canned backend has no option 'concurrency'; it takes model, repeat, signature",
        ),
    ]:
        r = _medsyn(site, *run, "--out", str(tmp_path / "bad"), *bad)
        assert (r.returncode, r.stderr.strip()) == (2, line)
        assert not (tmp_path / "bad").exists()


def test_a_broken_plugin_fails_only_when_selected(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _distribution(site, "medsyn-broken", {"broken": "no_such_module_here:Backend"})
    listed = _medsyn(site, "backends", "--json")
    assert listed.returncode == 1  # a finding: an installed plugin cannot be loaded
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert {"openai", "local", "llamacpp"} <= set(rows) and "options" in rows["openai"]
    assert rows["broken"]["error"].startswith("plugin 'broken' (medsyn.backends, from medsyn-broken 0.1) cannot be")
    r = _medsyn(site, "generate", "--backend", "broken", "--n", "1", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "plugin 'broken'" in r.stderr and "medsyn-broken 0.1" in r.stderr and "no_such_module_here" in r.stderr
