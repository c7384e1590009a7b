"""Bad input through the real entry point: one line naming the file, line, step or field, exit 2, nothing
written, nothing sent to an API."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import typer

from medsyn.errors import InputError
from medsyn.kg.store import OxigraphStore
from medsyn.pipeline import parse_pipeline, plan_pipeline
from medsyn.sampling.samples import MAX_SAMPLES
from medsyn.testing import demo_samples
from medsyn.testing.commands import MEDSYN
from medsyn.testing.openai_server import FakeOpenAIServer


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


# ------------------------------------------------------------------------------------------------ the probe
# Bad inputs of every kind (empty strings, missing parents, unknown codes, huge values, zero and negative numbers,
# FIFO, device and symlink outputs, inputs used as outputs, a pipeline that runs itself) for the commands that take
# them: each must be one `error:` line, exit 2, no traceback, nothing written. {w} is a scratch folder, {st} a small
# store, {run} a run folder recorded in it, {fifo} a FIFO, {link} a dangling symbolic link, {dev} a character device
# (a copy of /dev/full's node made in {w}, so a regression replaces that node, never the machine's own).
PROBE: list[tuple[str, ...]] = [
    ("onto", "snapshot", "--out", "{w}/nonexistent/x.nq", "--store", "{st}"),
    ("onto", "snapshot", "--out", "", "--store", "{st}"),
    ("onto", "snapshot", "--out", "{fifo}", "--store", "{st}"),
    ("onto", "snapshot", "--out", "{dev}", "--store", "{st}"),
    ("onto", "export-owl", "--out", "{link}", "--store", "{st}"),
    ("onto", "export-owl", "--out", "{w}", "--store", "{st}"),
    ("onto", "add-symptom", "Z99.9", "боль", "--store", "{st}"),
    ("onto", "add-symptom", "", "боль", "--store", "{st}"),
    ("onto", "add-symptom", "M54.5", " ", "--store", "{st}"),
    ("onto", "add-symptom", "M54.5", "б" * 50_000, "--store", "{st}"),  # 100 kB: under the kernel's 128 kB per argument
    ("onto", "add-symptom", "M54.5", "боль", "--weight", "-1", "--store", "{st}"),
    ("onto", "add-symptom", "M54.5", "боль", "--weight", "nan", "--store", "{st}"),
    ("onto", "add-symptom", "M54.5", "боль", "--source", "", "--store", "{st}"),
    ("onto", "add-symptom", "M54.5", "боль", "--by", "", "--store", "{st}"),
    ("onto", "remove", "нет такого симптома", "--store", "{st}"),
    ("onto", "merge-symptoms", "тошнота", "Тошнота.", "--store", "{st}"),
    ("onto", "history", "--limit", "-1", "--store", "{st}"),
    ("onto", "restore", "{w}", "--store", "{st}"),
    ("sample", "--n", "3", "--out", "", "--store", "{st}"),
    ("sample", "--n", "3", "--out", "{fifo}", "--store", "{st}"),
    ("sample", "--n", "3", "--out", "{link}", "--store", "{st}"),
    ("sample", "--n", "3", "--codes", "", "--out", "{w}/s.jsonl", "--store", "{st}"),
    ("sample", "--n", "3", "--codes", "Z99.9", "--out", "{w}/s.jsonl", "--store", "{st}"),
    ("sample", "--n", "0", "--out", "{w}/s.jsonl", "--store", "{st}"),
    ("sample", "--n", "abc", "--out", "{w}/s.jsonl", "--store", "{st}"),
    ("sample", "--n", "3", "--out", "{w}/s.jsonl", "--store", "{w}/no-store"),
    ("generate", "--n", "2", "--out", "{w}/g", "--timeout", "0", "--base-url", "http://127.0.0.1:9/v1"),
    ("generate", "--n", "2", "--out", "{w}/g", "--max-retries", "-1", "--base-url", "http://127.0.0.1:9/v1"),
    ("generate", "--n", "2", "--out", "", "--base-url", "http://127.0.0.1:9/v1"),
    ("generate", "--n", "2", "--out", "{fifo}", "--base-url", "http://127.0.0.1:9/v1"),
    ("kg", "export", "--out", "{fifo}", "--store", "{st}"),
    ("kg", "export", "--out", "{w}/nonexistent/x.nq", "--store", "{st}"),
    ("kg", "build", "--store", "{w}/nb", "--sources", ""),
    ("kg", "build", "--store", "{w}/nb", "--sources", "nope"),
    ("export", "{run}", "--out", "{run}", "--store", "{st}"),
    ("export", "{run}", "--out", "{link}", "--store", "{st}"),
    ("audit", "export-prov", "x", "--out", "{fifo}", "--store", "{st}"),
    ("run", "{w}/self.toml"),
    ("run", "{w}"),
    ("eval", "baseline", "--predictions", ""),
    ("merge", "{run}", "--out", ""),
    ("finetune", "--data", "{w}/none.jsonl", "--out", ""),
    ("weights", "--total", "0", "--store", "{st}"),
    ("nosuch",),
    ("sample", "--nosuch"),
]


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from mkg_small import build_store, write_notes

    w = tmp_path_factory.mktemp("probe")
    build_store(w / "st").close()
    write_notes(w / "run")
    os.mkfifo(w / "fifo")
    try:
        os.mknod(w / "full", 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        dev = str(w / "full")
    except PermissionError:  # not root: the machine's own node (refused before it is opened)
        dev = "/dev/full"
    (w / "link").symlink_to(w / "nowhere")
    (w / "self.toml").write_text(f'[[step]]\ncommand = "run"\npipeline = "{w}/self.toml"\n', encoding="utf-8")
    assert stat.S_ISCHR(os.stat(dev).st_mode), f"{dev} is not a character device"
    paths = {"st": str(w / "st"), "run": str(w / "run"), "fifo": str(w / "fifo"), "link": str(w / "link")}
    return {"w": str(w), "dev": dev, **paths}


@pytest.mark.parametrize("args", PROBE, ids=lambda a: " ".join(x[:24] for x in a[:4]))
def test_probe_every_bad_input_is_one_line_exit_2(args: tuple[str, ...], probe_dir: dict[str, str]) -> None:
    before = sorted(os.listdir(probe_dir["w"]))
    r = medsyn(*(a.format(**probe_dir) if len(a) < 1000 else a for a in args), timeout=60)
    one_line(r)
    assert sorted(os.listdir(probe_dir["w"])) == before  # nothing written (no store, folder, file or lock)
