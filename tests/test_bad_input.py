"""Bad input through the real entry point: one line naming the file, line, step or field, exit 2, nothing
written, nothing sent to an API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from medsyn.errors import InputError
from medsyn.kg.store import OxigraphStore
from medsyn.pipeline import parse_pipeline, plan_pipeline
from medsyn.sampling.samples import MAX_SAMPLES
from medsyn.testing import demo_samples
from medsyn.testing.openai_server import FakeOpenAIServer

MEDSYN = [sys.executable, "-m", "medsyn"]


def medsyn(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": ""}
    return subprocess.run([*MEDSYN, *args], capture_output=True, text=True, timeout=timeout, env=env)


def one_line(p: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_kg_query_on_a_folder(tmp_path: Path) -> None:
    one_line(medsyn("kg", "query", str(tmp_path)), str(tmp_path), "is a folder")


def test_kg_export_into_a_missing_folder_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "nonexistent" / "dir" / "x.nt"
    one_line(medsyn("kg", "export", "--format", "nt", "--out", str(target)), str(target.parent), "does not exist")
    assert not (tmp_path / "nonexistent").exists()


def test_a_sample_whose_symptoms_is_a_string_is_refused_before_any_request(tmp_path: Path) -> None:
    good = json.loads(demo_samples(1)[0].to_json())
    bad = tmp_path / "samples.jsonl"
    bad.write_text(json.dumps(good, ensure_ascii=False) + "\n" + json.dumps({**good, "symptoms": "боль"}) + "\n")
    store = tmp_path / "st"
    OxigraphStore(store).close()
    with FakeOpenAIServer() as srv:
        r = medsyn("generate", "--samples", str(bad), "--out", str(tmp_path / "o"), "--store", str(store),
                   "--base-url", srv.base_url)  # fmt: skip
        assert srv.stats()["requests"] == 0
    one_line(r, f"{bad}:2:", "'symptoms' must be a list of strings, got a string")
    assert not (tmp_path / "o").exists()


def test_huge_counts_are_refused_before_memory_grows(tmp_path: Path) -> None:
    store = tmp_path / "st"
    OxigraphStore(store).close()
    one_line(
        medsyn("sample", "--n", "100000000000", "--out", str(tmp_path / "s.jsonl"), "--store", str(store)),
        f"at most {MAX_SAMPLES:,}",
    )
    one_line(
        medsyn(
            "generate",
            "--n",
            "100000000",
            "--out",
            str(tmp_path / "o"),
            "--store",
            str(store),
            "--base-url",
            "http://127.0.0.1:9/v1",
        ),
        "--n 100,000,000",
        f"{MAX_SAMPLES:,}",
    )
    assert not (tmp_path / "s.jsonl").exists() and not (tmp_path / "o").exists()


def _root() -> object:
    from medsyn.cli import app

    return typer.main.get_command(app)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("n = [3, 4]", "option 'n' takes one value, not a list"),
        ('n = "ten"', "option 'n': Input should be a valid integer"),
        ('temperature = "hot"', "option 'temperature': Input should be a valid number"),
        ("n = 2.5", "option 'n': 2.5 is not an integer"),
        ('progress = "no"', "option 'progress'"),
        ("temperature = { x = 1 }", "option 'temperature' takes a value, not a table"),
    ],
)
def test_pipeline_values_of_the_wrong_shape_name_file_and_step(option: str, message: str) -> None:
    text = f'[[step]]\ncommand = "kg stats"\n[[step]]\ncommand = "generate"\nout = "o"\n{option}\n'
    with pytest.raises(InputError) as info:
        plan_pipeline(_root(), parse_pipeline(text, source="p.toml"), source="p.toml")
    assert str(info.value).startswith("p.toml: step 2 (generate): ") and message in str(info.value)


def test_pipeline_values_starting_with_dashes_stay_values() -> None:
    text = (
        '[[step]]\ncommand = "generate"\nout = "--n"\ntemplate = "-x"\n[[step]]\ncommand = "kg query"\nfile = "-q.rq"\n'
    )
    planned = [args for _, args in plan_pipeline(_root(), parse_pipeline(text, source="p.toml"), source="p.toml")]
    assert "--out=--n" in planned[0] and "--template=-x" in planned[0] and "--n" not in planned[0]
    assert planned[1][-2:] == ["--", "-q.rq"]


def test_pipeline_type_error_through_the_cli(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text('[[step]]\ncommand = "generate"\nout = "o"\nn = "ten"\n', encoding="utf-8")
    one_line(medsyn("run", str(cfg)), f"{cfg}: step 1 (generate): option 'n'")
