"""Third-party components through entry points: a tiny plugin distribution, made in a temporary folder, adds a
sampling strategy and a knowledge source that the command line then uses like built-in ones."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from medsyn.errors import InputError
from medsyn.plugins import entry_point_components
from medsyn.testing.commands import MEDSYN

REPO = Path(__file__).resolve().parents[1]

STRATEGY = '''
import dataclasses

from medsyn.errors import InputError
from medsyn.sampling.strategies.paper import PaperStrategy


class FirstSymptoms(PaperStrategy):
    """The paper's draw, cut to the first ``keep`` symptoms.

    keep: Symptoms kept per sample.
    """

    name = "first-symptoms"

    def __init__(self, *, keep: int = 1) -> None:
        if keep < 1:
            raise InputError(f"strategy {self.name!r}: option 'keep' must be at least 1, got {keep}")
        self.keep = keep

    def draw(self, tables, cats, u, start, seed):
        return [
            dataclasses.replace(s, symptoms=s.symptoms[: self.keep], symptom_iris=s.symptom_iris[: self.keep])
            for s in super().draw(tables, cats, u, start, seed)
        ]
'''

SOURCE = """
from pathlib import Path

from medsyn.kg.importers import SourceSpec
from medsyn.kg.importers._common import file_hash, read_table, source_graph, source_quads
from medsyn.kg.importers._symptoms import SymptomLinks

NAME = "clinic-symptoms"
SPEC = SourceSpec(NAME, __name__, "a clinic's own symptom table", "CC BY-NC 4.0 (test data)", non_commercial=True,
                  default=False)


def load(ctx):
    path = Path(__file__).with_name("symptoms.tsv")
    links = SymptomLinks(NAME, source_graph(NAME))
    quads = []
    for line, row in read_table(path, required=["code", "symptom"], delimiter="\\t"):
        iri, added = ctx.ensure_code(row["code"], source_graph(NAME), where=(path, line))
        quads += added
        links.add(row["code"], iri, row["symptom"], 1.0)
    return quads + links.quads() + source_quads(NAME, label="clinic", files=[path.name], file_digest=file_hash([path]))
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A distribution as pip would install it: the package and its ``.dist-info`` with ``entry_points.txt``."""
    site = tmp_path_factory.mktemp("site")
    pkg = site / "clinic_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "strategy.py").write_text(STRATEGY)
    (pkg / "source.py").write_text(SOURCE)
    rows = ["code\tsymptom", "M54.5\tболь в пояснице", "M54.5\tскованность", "M54.5\tпрострел", "J06.9\tкашель"]
    (pkg / "symptoms.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    info = site / "clinic_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clinic-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[medsyn.strategies]\nfirst-symptoms = clinic_plugin.strategy:FirstSymptoms\n"
        "broken = clinic_plugin.missing:Nothing\n\n"
        "[medsyn.sources]\nclinic-symptoms = clinic_plugin.source:SPEC\n"
    )
    return site


def _medsyn(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "COLUMNS": "200"}
    return subprocess.run([*MEDSYN, *args], capture_output=True, text=True, timeout=300, env=env, cwd=site)


def test_a_plugin_strategy_and_source_work_from_the_command_line(plugin_path: Path, shared_data: Path) -> None:
    listed = _medsyn(plugin_path, "kg", "sources", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert rows["clinic-symptoms"]["non_commercial"] is True and rows["clinic-symptoms"]["default"] is False
    assert "first-symptoms" in _medsyn(plugin_path, "strategies").stdout

    store = plugin_path / "store"
    built = _medsyn(
        plugin_path, "kg", "build", "--store", str(store), "--data", str(shared_data), "--sources",
        "rumedtop3,clinic-symptoms", "--quiet",
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    out = plugin_path / "s.jsonl"
    common = ["--store", str(store), "--sources", "clinic-symptoms", "--min-words", "1", "--out", str(out)]
    for keep in (1, 2):
        r = _medsyn(plugin_path, "sample", "--n", "40", "--strategy", "first-symptoms",
                    "--strategy-option", f"keep={keep}", *common)  # fmt: skip
        assert r.returncode == 0, r.stderr
        samples = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
        assert len(samples) == 40 and {s["strategy"] for s in samples} == {"first-symptoms"}
        assert {s["category"] for s in samples} == {"M54", "J06"}  # the plugin source's codes, and only those
        assert {len(s["symptoms"]) for s in samples if s["category"] == "M54"} == {keep}  # J06.9 has one symptom

    bad = _medsyn(plugin_path, "sample", "--n", "5", "--strategy", "first-symptoms", "--strategy-option", "kep=2",
                  *common)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "strategy 'first-symptoms' has no option 'kep'; did you mean 'keep'?" in bad.stderr


def test_a_broken_plugin_fails_in_one_line_when_selected(plugin_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_path))
    loaders = entry_point_components("medsyn.strategies")
    assert {"first-symptoms", "broken"} <= set(loaders)  # listing imports nothing
    why = r"^plugin 'broken' \(medsyn.strategies, from clinic-plugin .*\) cannot be loaded from 'clinic_plugin.missing"
    with pytest.raises(InputError, match=why + r":Nothing': ModuleNotFoundError"):
        loaders["broken"]()
    r = _medsyn(plugin_path, "sample", "--n", "5", "--strategy", "broken", "--out", str(plugin_path / "x.jsonl"))
    assert r.returncode == 2 and r.stderr.startswith("error: plugin 'broken'") and r.stderr.count("\n") == 1, r.stderr
