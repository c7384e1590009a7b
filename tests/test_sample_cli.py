"""``medsyn sample`` and ``medsyn weights`` through the real entry point, on an on-disk store."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from sampling_graph import real_graph

from medsyn.cli import main
from medsyn.kg.store import OxigraphStore
from medsyn.sampling.draw import draw_samples
from medsyn.sampling.samples import read_samples


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    path = tmp_path_factory.mktemp("kg") / "store"
    with OxigraphStore(path) as s:
        real_graph(shared_data).into(s)
    return path


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["medsyn", *args])
    monkeypatch.setenv("COLUMNS", "200")
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_writes_the_library_samples(monkeypatch, capsys, store_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    code, stdout, _ = run(
        monkeypatch, capsys, "sample", "--store", str(store_dir), "--n", "300", "--seed", "5", "--out", str(out)
    )
    assert code == 0 and "300 samples" in stdout
    samples = read_samples(out)
    kg = OxigraphStore(store_dir, read_only=True)
    expected = draw_samples(kg, n=300, seed=5)
    kg.close()
    assert samples == expected


def test_sample_plan_with_override_and_codes(monkeypatch, capsys, store_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.jsonl"
    code, _, err = run(
        monkeypatch,
        capsys,
        "sample",
        "--store",
        str(store_dir),
        "--plan",
        "weights",
        "--total",
        "60",
        "--codes",
        "M54,Z00",
        "--codes",
        "G44",
        "--override",
        "Z00=10",
        "--strategy",
        "softmax",
        "--out",
        str(out),
    )
    assert code == 0, err
    counts = Counter(s.category for s in read_samples(out))
    assert counts["Z00"] == 10 and set(counts) == {"M54", "G44", "Z00"} and sum(counts.values()) == 60
    assert all(s.demographics is not None for s in read_samples(out))


def test_weights_table(monkeypatch, capsys, store_dir: Path) -> None:
    code, out, _ = run(
        monkeypatch, capsys, "weights", "--store", str(store_dir), "--total", "1000", "--override", "Z00=10"
    )
    assert code == 0
    assert "105 categories, 87 with weight > 0" in out
    rows = [line for line in out.splitlines() if line.startswith("│ ")]
    assert rows[0].split("│")[1].strip() == "M54"  # sorted by weight
    z00 = next(r for r in rows if r.split("│")[1].strip() == "Z00")
    assert z00.split("│")[-2].strip() == "10"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "n must be >= 1"),
        (["--n", "5", "--strategy", "bogus"], "unknown strategy 'bogus'"),
        (["--n", "5", "--softmax-temperature", "0"], "--softmax-temperature must be a positive number"),
        (
            ["--n", "5", "--strategy", "softmax", "--strategy-option", "temperature=0"],
            "strategy 'softmax': option 'temperature' must be a positive number",
        ),
        (
            ["--n", "5", "--strategy", "softmax", "--strategy-option", "temperature=warm"],
            "strategy 'softmax': option temperature (float): expected a number, got 'warm'",
        ),
        (["--n", "5", "--strategy", "softmax", "--strategy-option", "temperature"], "--strategy-option 'temperature'"),
        (
            ["--n", "5", "--strategy", "softmax", *("--strategy-option", "temperature=2") * 2],
            "--strategy-option temperature is given twice",
        ),
        (["--n", "5", "--codes", "Q99"], "unknown code Q99"),
        (["--plan", "weights", "--codes", "Q99"], "unknown code Q99"),
        (["--n", "5", "--plan", "weights"], "either --n or --plan"),
        (["--plan", "other"], "unknown plan 'other'"),
        ([], "give --n N"),
        (["--n", "5", "--override", "Z00=1"], "--override applies to --plan weights only"),
        (["--plan", "weights", "--override", "Z00"], "invalid override 'Z00'"),
        (["--plan", "weights", "--total", "5", "--override", "Z00=6"], "--override add up to 6, more than --total = 5"),
        (["--plan", "weights", "--total", "0"], "--total must be >= 1"),
    ],
)
def test_bad_input_is_one_error_line(monkeypatch, capsys, store_dir: Path, tmp_path: Path, args, message) -> None:
    out = tmp_path / "never.jsonl"
    code, _, err = run(monkeypatch, capsys, "sample", "--store", str(store_dir), "--out", str(out), *args)
    assert code == 2
    assert err.startswith("error:") and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_empty_and_missing_stores(monkeypatch, capsys, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    OxigraphStore(empty).close()
    code, _, err = run(monkeypatch, capsys, "weights", "--store", str(empty))
    assert code == 2 and "no ICD-10 categories with symptoms" in err and err.count("\n") == 1
    code, _, err = run(
        monkeypatch, capsys, "sample", "--store", str(tmp_path / "nope"), "--n", "1", "--out", str(tmp_path / "x.jsonl")
    )
    assert code == 2 and "does not exist" in err
