"""Every check in sparql/checks/ fires on a small broken graph, with exactly the rows tests/check_cases.toml lists,
and no other check fires there (a typo in a check, or a check that catches nothing, fails here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from medsyn.kg.store import OxigraphStore, to_python
from medsyn.kg.validate import check_names, run_checks

MANIFEST = tomllib.loads((Path(__file__).parent / "check_cases.toml").read_text(encoding="utf-8"))
PREFIXES = dict(re.findall(r"@prefix (\w*): <([^>]+)> \.", MANIFEST["prefixes"]))
CASES: list[dict[str, Any]] = MANIFEST["case"]


def _expand(value: Any) -> Any:
    if isinstance(value, str) and (m := re.fullmatch(r"(\w+):(\S+)", value)) and m.group(1) in PREFIXES:
        return PREFIXES[m.group(1)] + m.group(2)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _normal(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, Any], ...]]:
    return sorted((tuple(sorted((k, _expand(v)) for k, v in r.items())) for r in rows), key=repr)


def _actual(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, Any], ...]]:
    return _normal([{k: to_python(v) for k, v in r.items()} for r in rows])


def _store(trig: str = "") -> OxigraphStore:
    s = OxigraphStore.in_memory()
    s.load(MANIFEST["prefixes"] + MANIFEST["base"] + trig, format="trig")
    return s


def test_the_base_graph_passes_every_check() -> None:
    assert {n: rows for n, rows in run_checks(_store()).items() if rows} == {}


def test_every_check_has_a_case_where_it_fires() -> None:
    fired = {name for case in CASES for name, rows in case["rows"].items() if rows}
    targeted = {case["check"] for case in CASES}
    assert sorted(fired) == sorted(targeted) == check_names()
    assert all(case["rows"].get(case["check"]) for case in CASES), "each case's own check must fire"


@pytest.mark.parametrize("case", CASES, ids=[f"{c['check']}-{i}" for i, c in enumerate(CASES)])
def test_checks_return_the_listed_rows(case: dict[str, Any]) -> None:
    unknown = set(case["rows"]) - set(check_names())
    assert not unknown, f"the manifest names checks that do not exist: {unknown}"
    results = run_checks(_store(case["trig"]))
    got = {n: _actual(rows) for n, rows in results.items() if rows}
    want = {n: _normal(rows) for n, rows in case["rows"].items() if rows}
    assert got == want, case["about"]
