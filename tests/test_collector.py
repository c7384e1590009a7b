"""The cycle collector is paused while a batch command builds its records, and comes back as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from medsyn.collector import collector_paused
from medsyn.sharing import export as export_module


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_inside_and_back_after_even_on_error(collector_on: None) -> None:
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested: the inner block must not switch it back on early
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_an_already_paused_collector_stays_paused(collector_on: None) -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_export_collects_its_records_with_the_collector_paused(
    collector_on: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[bool] = []

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(gc.isenabled())
        raise SystemExit("stop here")  # the rest of export is the export tests' business

    monkeypatch.setattr(export_module, "_collect", spy)
    monkeypatch.setattr(export_module, "read_source", lambda p: p)
    monkeypatch.setattr(export_module, "_source_facts", lambda store: {})  # read before collecting; no store here
    with pytest.raises(SystemExit):
        export_module.export([tmp_path / "run"], tmp_path / "out", store=None)  # type: ignore[arg-type]
    assert seen == [False] and gc.isenabled()
