"""Readers' error lines and the ``medsyn eval`` commands end to end on small real files."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from medsyn.errors import InputError
from medsyn.evaluation.data import (
    attach_requested,
    default_dev,
    default_requested,
    default_synthetic,
    default_train,
    read_notes,
    read_requested,
    restrict_codes,
)
from medsyn.testing.commands import MEDSYN


def _write(path: Path, rows: list[dict] | list[str]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


def _medsyn(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEDSYN, "eval", *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real notes of 6 mid-frequency codes: train, dev and GPT-4 notes, plus one generate-output file."""
    d = tmp_path_factory.mktemp("small")
    train = read_notes(default_train())
    codes = [c for c, _ in Counter(train.codes).most_common(10)[4:]]

    def rows(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines() if json.loads(line)["code"] in codes]

    gpt4 = rows(default_synthetic()[0])
    generated = [
        {
            "id": f"g{i}",
            "code": r["code"] + ".0",
            "model": "gpt-4",
            "prompt": "…",
            "symptoms": ["боль"],
            "example_id": None,
            "response": r["symptoms"],
            "scores": {},
            "accepted": i % 4 != 0,
        }
        for i, r in enumerate(gpt4)
    ]
    return {
        "train": _write(d / "train.jsonl", rows(default_train())),
        "dev": _write(d / "dev.jsonl", rows(default_dev())),
        "gpt4": _write(d / "gpt4_train.jsonl", gpt4),
        "generated": _write(d / "generated.jsonl", generated),
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"idx": "a", "symptoms": "боль"}', ":2: missing field 'code'"),
        ('{"idx": "a", "symptoms": "боль", "code": 5}', ":2: field 'code' must be a string"),
        ('{"idx": "a", "symptoms": "боль", "code": "спина"}', ":2: field 'code' is not an ICD-10 category"),
        ('{"idx": "a", "symptoms": "  ", "code": "M54"}', ":2: field 'symptoms' is empty"),
        ('{"idx": "a", "symptoms": "боль", "code": "M54"', ":2: invalid JSON"),
        ('["M54"]', ":2: expected a JSON object"),
        ('{"id": "g", "code": "M54", "response": "боль"}', ":2: line is in generate layout"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    p = _write(tmp_path / "bad.jsonl", ['{"idx": "ok", "symptoms": "боль в спине", "code": "M54"}', line])
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as err:
        read_notes(p)
    assert str(err.value).startswith(str(p))
    assert "\n" not in str(err.value)


def test_generate_output_uses_response_and_accepted(small: dict[str, Path]) -> None:
    ns = read_notes(small["generated"])
    everything = read_notes(small["generated"], accepted_only=False)
    assert ns.format == "generate"
    assert len(everything.notes) - len(ns.notes) == len(ns.warnings) > 0
    assert all(n.code.count(".") == 0 and n.requested == ("боль",) for n in ns.notes)
    assert "was not accepted" in ns.warnings[0] and ":1:" in ns.warnings[0]


def test_unknown_codes_warn_or_fail(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "syn.jsonl",
        [{"idx": "1", "symptoms": "боль", "code": "M54"}, {"idx": "2", "symptoms": "сыпь", "code": "Z99"}],
    )
    kept = restrict_codes(read_notes(p), {"M54"})
    assert [n.id for n in kept.notes] == ["1"]
    assert kept.warnings == [f"{p}:2: code Z99 does not occur in the train set; note dropped"]
    with pytest.raises(InputError, match=r"syn\.jsonl:2: code Z99"):
        restrict_codes(read_notes(p), {"M54"}, strict=True)


def test_requested_symptoms_pair_only_when_counts_match(small: dict[str, Path]) -> None:
    req = read_requested(default_requested())
    gpt4 = read_notes(default_synthetic()[0])
    paired, ok = attach_requested(gpt4, req)
    assert ok
    # The sampler drew 2..5 symptoms; a few symptom strings hold commas themselves, so a few sets split into more.
    sizes = [len(n.requested) for n in paired.notes]
    assert sum(2 <= k <= 5 for k in sizes) / len(sizes) > 0.9
    _, ok_small = attach_requested(read_notes(small["train"]), req)
    assert not ok_small


def test_cli_baseline_and_bad_input(small: dict[str, Path], tmp_path: Path) -> None:
    pred = tmp_path / "pred.jsonl"
    res = _medsyn("baseline", "--train", small["train"], "--eval", small["dev"], "--predictions", pred)
    assert res.returncode == 0, res.stderr
    assert "acc=" in res.stdout and "hit@3=" in res.stdout
    rows = [json.loads(x) for x in pred.read_text().splitlines()]
    assert len(rows) == len(read_notes(small["dev"]).notes) and len(rows[0]["prediction"]) == 3

    bad = _write(tmp_path / "bad.jsonl", ['{"idx": "a", "code": "M54"}'])
    res = _medsyn("baseline", "--train", bad)
    assert res.returncode == 2
    assert f"{bad}:1: missing field 'symptoms'" in res.stderr
    assert "Traceback" not in res.stderr

    strict = _medsyn(
        "upsample",
        "--train",
        small["train"],
        "--dev",
        small["dev"],
        "--synthetic",
        default_synthetic()[0],
        "--strict-codes",
        "--out",
        tmp_path / "x",
    )
    assert strict.returncode == 2 and "does not occur in the train set" in strict.stderr
    assert _medsyn("upsample", "--seeds", "a,b").stderr.count("--seeds") == 1


def test_cli_upsample_and_quality_write_reports(small: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "up"
    res = _medsyn(
        "upsample",
        "--train",
        small["train"],
        "--dev",
        small["dev"],
        "--synthetic",
        small["gpt4"],
        "--synthetic",
        small["generated"],
        "--seeds",
        "0",
        "--real-shares",
        "0.5,1",
        "--syn-shares",
        "0,1",
        "--epochs",
        "2",
        "--out",
        out,
    )
    assert res.returncode == 0, res.stderr
    md = (out / "upsample.md").read_text()
    assert "| gpt4 | real 1 + syn 1 |" in md and "| generated | synthetic only |" in md
    for png in ["accuracy_vs_share.png", "code_gains_gpt4.png", "code_gains_generated.png"]:
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    raw = json.loads((out / "results.json").read_text())
    # Real-only points once, then three points for each set and for its graph-only control.
    assert len(raw) == 2 + 4 * 3
    assert {r["set"] for r in raw if r["control_of"]} == {"gpt4:lists", "generated:lists"}
    assert "## What the text adds over the graph" in md and "| gpt4 | real 1 + syn 1 |" in md
    assert "gpt4: requested symptoms paired by rank within code" in md
    assert "the text adds" in res.stdout
    adds = json.loads((out / "text_adds.json").read_text())
    assert {(r["set"], r["mix"]) for r in adds["sets"]} == {
        (name, mix)
        for name in ("gpt4", "generated")
        for mix in ("real 0.5 + syn 1", "real 1 + syn 1", "synthetic only")
    }
    # The report's table holds the same rows as text_adds.json (it once printed its header alone).
    section = md.split("## What the text adds over the graph")[1].split("\n## ")[0]
    table = [line.split(" | ") for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [(c[0].lstrip("| "), c[1], c[4]) for c in table] == [
        (r["set"], r["mix"], f"{r['text_adds'][0]:+.2f} ± {r['text_adds'][1]:.2f}") for r in adds["sets"]
    ]

    qout = tmp_path / "q"
    # --jobs 2: per-note scores in two processes (tests/test_quality_fast_paths.py: the same figures as one)
    res = _medsyn("quality", "--train", small["train"], "--synthetic", small["gpt4"], "--jobs", "2", "--out", qout)
    assert res.returncode == 0, res.stderr
    qmd = (qout / "quality.md").read_text()
    assert "real-vs-synthetic AUC" in qmd and "distinct-2" in qmd
    assert (qout / "duplicates.png").exists() and (qout / "lengths.png").exists()


def test_cli_held_out_codes_and_synthetic_only(small: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "held"
    res = _medsyn(
        "held-out-codes",
        "--train",
        small["train"],
        "--dev",
        small["dev"],
        "--synthetic",
        small["gpt4"],
        "--seeds",
        "0,1",
        "--codes",
        "2",
        "--min-dev",
        "1",
        "--min-notes",
        "1",
        "--out",
        out,
    )
    assert res.returncode == 0, res.stderr
    md = (out / "held_out_codes.md").read_text()
    assert (out / "held_out_codes.png").read_bytes()[:4] == b"\x89PNG"
    rows = json.loads((out / "held_out_codes.json").read_text())
    assert {r["set_name"] for r in rows} == {"real notes, same count", "gpt4", "gpt4:lists"}
    assert len(rows) == 2 * 3
    # The same number of notes is added by every set: the training sets differ in their text only.
    assert len({(r["seed"], r["n_train"]) for r in rows}) == 2
    real = [r for r in rows if r["set_name"] == "real notes, same count"]
    assert all(r["accuracy"] > 0 for r in real), "real notes of a held-out code must teach it"
    assert "Codes outside the real training set" in md

    out = tmp_path / "only"
    res = _medsyn(
        "synthetic-only",
        "--train",
        small["train"],
        "--dev",
        small["dev"],
        "--synthetic",
        small["gpt4"],
        "--seeds",
        "0",
        "--out",
        out,
    )
    assert res.returncode == 0, res.stderr
    rows = json.loads((out / "synthetic_only.json").read_text())
    by = {r["set_name"]: r for r in rows}
    assert set(by) == {"gpt4", "gpt4:lists", "gpt4: real notes, same count"}
    assert by["gpt4"]["n_train"] == by["gpt4:lists"]["n_train"] >= by["gpt4: real notes, same count"]["n_train"]
    assert (out / "synthetic_only.md").is_file()


def test_cli_experiments_refuse_bad_values(small: dict[str, Path]) -> None:
    res = _medsyn(
        "held-out-codes",
        "--train",
        small["train"],
        "--dev",
        small["dev"],
        "--synthetic",
        small["gpt4"],
        "--codes",
        "50",
    )
    assert res.returncode == 2
    assert "n_codes: only" in res.stderr and "Traceback" not in res.stderr
    res = _medsyn("synthetic-only", "--classifier", "bert")
    assert res.returncode == 2 and "--classifier: expected one of tfidf, vectors" in res.stderr


def test_cli_quality_jobs_must_be_positive(small: dict[str, Path]) -> None:
    bad = _medsyn("quality", "--train", small["train"], "--synthetic", small["generated"], "--jobs", "0")
    assert bad.returncode != 0 and "--jobs" in bad.stderr and "Traceback" not in bad.stderr
