"""Shareable sets: no real note in notes.jsonl, ``medsyn export`` to jsonl/Parquet with the near-copy check and a
dataset card, loaded back with ``datasets``; PROV-O that the ``prov`` package reads; SHACL on the run graphs.

Real components: the full graph built from the real data, real samples with real example notes, a real local
OpenAI-compatible server process answering (the only stand-in is the model behind it), the real ``medsyn`` CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from medsyn.generation.backends import get_backend
from medsyn.generation.config import GenerationConfig
from medsyn.generation.engine import generate
from medsyn.generation.prompts import example_marker, sample_examples
from medsyn.generation.run_folder import FAILURES_FILE, NOTES_FILE, RUN_FILE
from medsyn.kg.importers.registry import source_spec
from medsyn.kg.notes import real_notes
from medsyn.kg.store import OxigraphStore
from medsyn.sampling.draw import draw_samples
from medsyn.sharing.folder import SCORE_KEYS, read_export_records
from medsyn.testing.commands import MEDSYN
from medsyn.testing.openai_server import FakeOpenAIServer


def medsyn(*args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*MEDSYN, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def runs(kg_store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two runs on real samples against the full graph: the paper chat prompt and the few-shot prompt.

    On a copy of the session's graph: the runs' provenance must not reach the other files' tests of that graph."""
    d = tmp_path_factory.mktemp("export")
    shutil.copytree(kg_store_dir, d / "store")
    store = OxigraphStore(d / "store")
    try:
        samples = draw_samples(store, n=8, strategy="paper", seed=3)
        with FakeOpenAIServer(latency=0.0) as srv:
            be = get_backend("openai", base_url=srv.base_url, concurrency=2, backoff_base=0.01)
            generate(
                samples,
                d / "chat",
                store=store,
                backend=be,
                config=GenerationConfig(seed=1),
                command=["medsyn", "generate", "--n", "8"],
            )
            be = get_backend("openai", base_url=srv.base_url, concurrency=2, backoff_base=0.01)
            generate(
                samples[:4],
                d / "fewshot",
                store=store,
                backend=be,
                config=GenerationConfig(seed=2, template="paper_fewshot_ru", shots=3),
            )
        real = real_notes(store)
    finally:
        store.close()
    return {"dir": d, "store": d / "store", "samples": samples, "real": real}


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def iri(term: object) -> str:
    return str(getattr(term, "uri", term))


def real_texts_in(text: str, real: list[tuple[str, str]]) -> list[str]:
    return [i for i, t in real if len(t) > 30 and t in text]


def test_notes_jsonl_holds_example_ids_not_real_notes(runs: dict) -> None:
    real = runs["real"]
    for name in ("chat", "fewshot"):
        folder = runs["dir"] / name
        recs = lines(folder / NOTES_FILE) + lines(folder / FAILURES_FILE)
        assert recs and any(r["accepted"] for r in recs)
        blob = (folder / NOTES_FILE).read_text(encoding="utf-8") + (folder / FAILURES_FILE).read_text("utf-8")
        assert real_texts_in(blob, real) == []
        for r in recs:
            prompt = json.dumps(r["prompt"], ensure_ascii=False)
            assert r["example_ids"] and all(example_marker(i) in prompt for i in r["example_ids"])
            assert len(r["prompt_sha256"]) == 64
    # The few-shot prompt's cues (phrases of the real notes) are redacted too, and the prompt still re-renders.
    few = lines(runs["dir"] / "fewshot" / NOTES_FILE)[0]
    assert example_marker(few["example_ids"][0], "cues") in few["prompt"][0]["content"]
    samples = {s.id: s for s in runs["samples"]}
    shown = sample_examples(samples[few["sample_id"]])
    assert all(t not in few["prompt"][0]["content"] for _, t in shown)


def test_export_jsonl_with_card(runs: dict, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    r = medsyn("export", runs["dir"] / "chat", runs["dir"] / "fewshot", "--out", out, "--store", runs["store"])
    assert r.returncode == 0, r.stderr
    notes = lines(runs["dir"] / "chat" / NOTES_FILE) + lines(runs["dir"] / "fewshot" / NOTES_FILE)
    assert f"exported {len(notes)} notes" in r.stdout and "0 exact, 0 near" in r.stdout
    recs = lines(out / "data" / "train.jsonl")
    assert sorted(x["idx"] for x in recs) == sorted(n["id"] for n in notes)
    by_id = {n["id"]: n for n in notes}
    for x in recs:
        n = by_id[x["idx"]]
        assert x["symptoms"] == n["response"] and x["requested_symptoms"] == n["symptoms"]
        assert x["code"] == n["code"] and x["split"] == "train" and x["subcode"] == n["subcode"]
        assert x["example_ids"] == n["example_ids"] and x["run_id"] == n["run_id"]
        assert x["license"] == "apache-2.0" and x["non_commercial"] is False and "wikimed" in x["sources"]
        assert "prompt" not in x
        # Every score the run's filter judged the note by travels with it, the newer checks' too.
        assert {k: x["scores"][k] for k in SCORE_KEYS} == {k: n["scores"].get(k) for k in SCORE_KEYS}
        assert x["scores"]["novelty"] is not None and x["scores"]["nonwords"] == n["scores"]["nonwords"]
    assert real_texts_in((out / "data" / "train.jsonl").read_text("utf-8"), runs["real"]) == []
    card = (out / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["license"] == "apache-2.0" and front["language"] == ["ru"]
    assert front["size_categories"] == ["n<1K"] and front["task_categories"] == ["text-classification"]
    assert front["configs"][0]["data_files"][0] == {"split": "train", "path": "data/train.jsonl"}
    codes = Counter(x["code"] for x in recs)
    for code, k in codes.items():
        assert f"| {code} | {k} |" in card
    assert "medsyn generate --n 8" in card  # the command from run.json
    # Every source the graph declares is listed once with the licence its registry line gives, read by one query.
    for name in ("wikimed", "rumedtop3"):
        spec = source_spec(name)
        assert card.count(f"(`{name}`) | {spec.license} | {'yes' if spec.non_commercial else 'no'} |") == 1, name
    assert "paper_fewshot_ru" in card and "min_recall" in card and "CC BY-NC-SA" not in card.split("##")[0]
    assert (out / "notes_per_code.png").stat().st_size > 1000
    assert "## Usefulness: what the text adds over the graph" in card and "No evaluation was attached" in card
    assert "No privacy assessment was attached" in card and not (out / "prov.ttl").exists()
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["records"] == len(recs) and manifest["near_copy"]["checked_against_real_notes"] == len(runs["real"])
    # The card's lineage query runs on the store and finds the note's inputs.
    q = medsyn("kg", "query", out / "lineage.rq", "--store", runs["store"], "-f", "json")
    assert q.returncode == 0, q.stderr
    rows = json.loads(q.stdout)["results"]["bindings"]
    assert len(rows) == 1 and "note/real/" in rows[0]["derivedFrom"]["value"]


def test_export_parquet_loads_with_datasets(runs: dict, tmp_path: Path) -> None:
    out = tmp_path / "pq"
    r = medsyn("export", runs["dir"] / "chat", "--out", out, "--format", "parquet", "--store", runs["store"])
    assert r.returncode == 0, r.stderr
    script = (
        "import datasets, json, sys\n"
        "ds = datasets.load_dataset('parquet', data_files=sys.argv[1], split='train', cache_dir=sys.argv[3])\n"
        "card = datasets.load_dataset(sys.argv[2], split='train', cache_dir=sys.argv[3])\n"
        "print(json.dumps({'n': len(ds), 'cols': ds.column_names, 'card_n': len(card), 'row': ds[0]},"
        " ensure_ascii=False))\n"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    p = subprocess.run(
        [sys.executable, "-c", script, str(out / "data" / "train.parquet"), str(out), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    notes = lines(runs["dir"] / "chat" / NOTES_FILE)
    assert got["n"] == got["card_n"] == len(notes)  # the card's configs point datasets at the data file
    assert {"idx", "code", "symptoms", "split", "requested_symptoms", "license", "scores"} <= set(got["cols"])
    assert isinstance(got["row"]["requested_symptoms"], list) and 0 <= got["row"]["scores"]["recall"] <= 1
    assert isinstance(got["row"]["scores"]["novelty"], float) and isinstance(got["row"]["scores"]["nonwords"], list)
    assert read_export_records(out) == read_export_records(out)  # the library reads it back too
    assert {x["idx"] for x in read_export_records(out)} == {n["id"] for n in notes}


def test_near_copies_are_dropped_flagged_or_fail(runs: dict, tmp_path: Path) -> None:
    run = tmp_path / "copying"
    shutil.copytree(runs["dir"] / "chat", run, ignore=shutil.ignore_patterns(".lock"))
    recs = lines(run / NOTES_FILE)
    long_real = [t for _, t in runs["real"] if len(t.split()) >= 40]
    recs[0]["response"] = long_real[0].upper()  # an exact copy (case differs)
    words = long_real[1].split()
    recs[1]["response"] = " ".join([*words[:-1], "дополнительно"])  # one word changed: a near-copy
    (run / NOTES_FILE).write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in recs), "utf-8")
    n = len(recs)

    r = medsyn("export", run, "--out", tmp_path / "drop", "--store", runs["store"])
    assert r.returncode == 0, r.stderr
    assert "1 exact, 1 near (Jaccard >= 0.8), 2 dropped, 0 flagged" in r.stdout
    kept = lines(tmp_path / "drop" / "data" / "train.jsonl")
    assert len(kept) == n - 2 and {recs[0]["id"], recs[1]["id"]}.isdisjoint(x["idx"] for x in kept)

    r = medsyn("export", run, "--out", tmp_path / "flag", "--store", runs["store"], "--on-near-copy", "flag")
    assert r.returncode == 0, r.stderr
    flagged = {x["idx"]: x for x in lines(tmp_path / "flag" / "data" / "train.jsonl")}
    assert len(flagged) == n and flagged[recs[0]["id"]]["near_copy"] and flagged[recs[1]["id"]]["near_copy"]
    assert flagged[recs[1]["id"]]["near_copy_jaccard"] >= 0.8
    assert sum(x["near_copy"] for x in flagged.values()) == 2

    r = medsyn("export", run, "--out", tmp_path / "fail", "--store", runs["store"], "--on-near-copy", "fail")
    assert r.returncode == 1 and "2 note(s) copy a real note" in r.stderr and not (tmp_path / "fail").exists()


def test_export_bad_input_is_one_line(runs: dict, tmp_path: Path) -> None:
    empty = OxigraphStore(tmp_path / "other-store")
    empty.close()
    r = medsyn("export", runs["dir"] / "chat", "--out", tmp_path / "x", "--store", tmp_path / "other-store")
    assert r.returncode == 2 and "has no provenance in this store" in r.stderr and "Traceback" not in r.stderr
    r = medsyn("export", tmp_path / "missing", "--out", tmp_path / "x", "--store", runs["store"])
    assert r.returncode == 2 and "no such file or folder" in r.stderr
    r = medsyn("export", runs["dir"] / "chat", "--out", tmp_path / "x", "--store", runs["store"], "--format", "csv")
    assert r.returncode == 2 and "--format" in r.stderr and "jsonl, parquet" in r.stderr


def test_prov_package_reads_usages_and_derivations(runs: dict, tmp_path: Path) -> None:
    from prov.model import ProvDocument, ProvUsage

    run = runs["dir"] / "fewshot"
    run_id = json.loads((run / RUN_FILE).read_text())["run_id"]
    scored = [x for x in lines(run / NOTES_FILE) + lines(run / FAILURES_FILE) if x.get("content_hash")]
    for fmt, reader in (("provjson", "json"), ("ttl", "rdf"), ("provn", None)):
        out = tmp_path / f"run.{fmt}"
        r = medsyn("audit", "export-prov", run_id, "--format", fmt, "--out", out, "--store", runs["store"])
        assert r.returncode == 0, r.stderr
        if reader is None:
            assert out.read_text().startswith("document") and "wasDerivedFrom(" in out.read_text()
            continue
        kw = {"rdf_format": "turtle"} if reader == "rdf" else {}
        doc = ProvDocument.deserialize(source=str(out), format=reader, **kw)
        usages = [x for x in doc.get_records(ProvUsage)]
        gens = [u for u in usages if "/generation/" in iri(u.args[0])]
        # Per note: its code, each symptom and each example note; the template and graph build every note of the
        # run shares are the run's usages, stated once.
        want = sum(1 + len(set(x["symptom_iris"])) + len(set(x["example_ids"])) for x in scored)
        assert len(gens) == want
        run_usages = [u for u in usages if "/run/" in iri(u.args[0])]
        assert sorted(iri(u.args[1]).split("/")[-2] for u in run_usages) == ["build", "template"]
        derivations = [x for x in doc.get_records() if type(x).__name__ == "ProvDerivation"]
        assert len(derivations) == sum(len(set(x["example_ids"])) for x in scored)
        assoc = [x for x in doc.get_records() if type(x).__name__ == "ProvAssociation"]
        assert len(assoc) == 1  # the run's, which every note generation of it shares
        assert all("/agent/" in iri(a.args[1]) and "/template/" in iri(a.args[2]) for a in assoc)
        agents = [x for x in doc.get_records() if type(x).__name__ == "ProvAgent"]
        assert len(agents) == 1
    r = medsyn("audit", "export-prov", "nope", "--store", runs["store"])
    assert r.returncode == 2 and "no generation run 'nope'" in r.stderr


def test_kg_validate_runs_the_provenance_shapes(runs: dict, tmp_path: Path) -> None:
    r = medsyn("kg", "validate", "--no-reasoner", "--store", runs["store"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SHACL (provenance, 2 run graph(s)" in r.stdout and "conforms" in r.stdout
    # A copy of the store where the model agent lost its prov:Agent type: a finding, named.
    broken = tmp_path / "broken"
    shutil.copytree(runs["store"], broken)
    s = OxigraphStore(broken)
    try:
        s.update(
            "PREFIX prov: <http://www.w3.org/ns/prov#> DELETE { GRAPH ?g { ?a a prov:Agent } } "
            "WHERE { GRAPH ?g { ?a a prov:Agent } }"
        )
    finally:
        s.close()
    r = medsyn("kg", "validate", "--no-reasoner", "--store", broken)
    assert r.returncode == 1 and "SHACL provenance" in r.stderr and "prov:Agent" in r.stdout


def test_authors_set_exports_and_eval_reads_exported_folders(runs: dict, shared_data: Path, tmp_path: Path) -> None:
    gpt4 = shared_data / "medsyn" / "synthetic" / "gpt4_train.jsonl"
    out = tmp_path / "gpt4"
    r = medsyn("export", gpt4, "--out", out, "--store", runs["store"], "--on-near-copy", "flag")
    assert r.returncode == 0, r.stderr
    recs = lines(out / "data" / "train.jsonl")
    source = lines(gpt4)
    assert len(recs) == len(source) == 2378 and {x["idx"] for x in recs} == {x["idx"] for x in source}
    assert all(x["license"] == "mit" and x["backend"] == "authors" and x["model"] == "gpt4" for x in recs)
    assert all(x["requested_symptoms"] for x in recs)  # paired by rank from train_sampled.jsonl
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["near_copy"]["flagged"] == sum(x["near_copy"] for x in recs)
    assert "license: mit" in (out / "README.md").read_text()

    q = medsyn("eval", "quality", "--synthetic", out, "--auc-max", "100", "--out", tmp_path / "q")
    assert q.returncode == 0, q.stderr
    assert q.stdout.startswith("gpt4: AUC") and (tmp_path / "q" / "quality.md").is_file()

    chat = tmp_path / "chat"
    assert medsyn("export", runs["dir"] / "chat", "--out", chat, "--store", runs["store"]).returncode == 0
    u = medsyn(
        "eval",
        "upsample",
        "--synthetic",
        chat,
        "--seeds",
        "0",
        "--real-shares",
        "1",
        "--syn-shares",
        "0,1",
        "--no-synthetic-only",
        "--epochs",
        "1",
        "--out",
        tmp_path / "u",
    )
    assert u.returncode == 0, u.stderr
    assert "chat" in (tmp_path / "u" / "upsample.md").read_text()


def test_reprov_brings_an_old_layout_run_up_to_the_shapes(runs: dict, tmp_path: Path) -> None:
    old = tmp_path / "old-store"
    shutil.copytree(runs["store"], old)
    s = OxigraphStore(old)
    try:  # what a run recorded before the plain PROV-O terms looked like
        s.update(
            "PREFIX prov: <http://www.w3.org/ns/prov#> DELETE { GRAPH ?g { ?s ?p ?o } } WHERE { GRAPH ?g { ?s ?p ?o } "
            "FILTER(?p IN (prov:used, prov:wasDerivedFrom, prov:qualifiedAssociation) || ?o = prov:Agent) }"
        )
    finally:
        s.close()
    r = medsyn("kg", "validate", "--no-reasoner", "--store", old)
    assert r.returncode == 1 and "prov:used its prompt template" in r.stdout
    for name in ("chat", "fewshot"):
        r = medsyn("audit", "reprov", runs["dir"] / name, "--store", old)
        assert r.returncode == 0, r.stderr
        assert "provenance of" in r.stdout
    r = medsyn("kg", "validate", "--no-reasoner", "--store", old)
    assert r.returncode == 0, r.stdout + r.stderr
    r = medsyn("audit", "reprov", tmp_path, "--store", old)
    assert r.returncode == 2 and "not a medsyn generate folder" in r.stderr


# ------------------------------------------------------------------------------------------------ the output folder
def _one_line(r: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines_ = r.stderr.strip().splitlines()
    assert len(lines_) == 1 and lines_[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert all(f in lines_[0] for f in fragments), lines_[0]


def test_an_out_that_is_holds_or_is_inside_an_input_is_refused(runs: dict, tmp_path: Path) -> None:
    """`export runs/x --out runs/x` used to delete the run folder and exit 0."""
    run = tmp_path / "runs" / "chat"
    shutil.copytree(runs["dir"] / "chat", run)
    before = sorted(p.name for p in run.iterdir())
    for out, relation in ((run, "is the input"), (run.parent, "holds the input"), (run / "ds", "is inside the input")):
        _one_line(medsyn("export", run, "--out", out, "--store", runs["store"]), f"--out {out}: {relation}")
    assert sorted(p.name for p in run.iterdir()) == before and (run / NOTES_FILE).stat().st_size > 0
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _one_line(medsyn("export", run, "--out", link, "--store", runs["store"]), "symbolic link")
    _one_line(medsyn("export", run, "--out", "", "--store", runs["store"]), "--out: empty path")


def _paused(point: str, flag: Path, *args: str | Path) -> subprocess.Popen[str]:
    """A real `medsyn` that stops at fault point ``point`` (medsyn.faults): ``flag`` appears when it is there."""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "MEDSYN_PAUSE_AT": point, "MEDSYN_PAUSE_FILE": str(flag)}
    proc = subprocess.Popen([*MEDSYN, *map(str, args)], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 300
    while not flag.exists():
        assert proc.poll() is None, f"ended before {point}: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, f"never reached {point}"
        time.sleep(0.01)
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.mark.parametrize("point", ["swap.aside", "swap.done"])
def test_kill_9_inside_the_swap_leaves_a_whole_folder_and_the_rerun_cleans_up(
    runs: dict, tmp_path: Path, point: str
) -> None:
    """The old helper deleted the old folder, then renamed the new one in: a kill there left half a folder."""
    from medsyn.atomic import recover_dir

    out = tmp_path / "ds"
    chat, both = [runs["dir"] / "chat"], [runs["dir"] / "chat", runs["dir"] / "fewshot"]
    assert medsyn("export", *chat, "--out", out, "--store", runs["store"]).returncode == 0
    old = lines(out / "data" / "train.jsonl")
    proc = _paused(point, tmp_path / "flag", "export", *both, "--out", out, "--store", runs["store"])
    _kill(proc)
    # Whole folders only: the old one renamed aside (and the new one not yet in), nothing half-deleted.
    kinds = sorted(name.split(".")[2].split("-")[0] for name in _hidden(out))
    assert kinds == (["building", "old"] if point == "swap.aside" else ["old"])
    assert out.exists() == (point == "swap.done")
    recover_dir(out)  # what the next export does first, under the folder's lock
    assert _hidden(out) == [] and sorted(p.name for p in out.iterdir()) == sorted(
        ["data", "export.json", "README.md", "lineage.rq", "notes_per_code.png"]
    )
    kept = lines(out / "data" / "train.jsonl")
    assert len(kept) == (len(old) if point == "swap.aside" else len(old) + len(lines(both[1] / NOTES_FILE)))
    again = medsyn("export", *both, "--out", out, "--store", runs["store"])
    assert again.returncode == 0, again.stderr
    assert _hidden(out) == [] and len(lines(out / "data" / "train.jsonl")) == len(old) + len(
        lines(both[1] / NOTES_FILE)
    )


def test_a_kill_left_work_folders_that_the_next_export_removes(runs: dict, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    assert medsyn("export", runs["dir"] / "chat", "--out", out, "--store", runs["store"]).returncode == 0
    _kill(_paused("swap.aside", tmp_path / "flag", "export", runs["dir"] / "chat", "--out", out,
                  "--store", runs["store"]))  # fmt: skip
    again = medsyn("export", runs["dir"] / "chat", "--out", out, "--store", runs["store"])
    assert again.returncode == 0 and f"recovered output folder {out}: restored" in again.stderr, again.stderr
    assert _hidden(out) == [] and (out / "export.json").is_file()


def test_a_second_export_into_the_same_folder_is_refused(runs: dict, tmp_path: Path) -> None:
    out, flag = tmp_path / "ds", tmp_path / "flag"
    first = _paused("swap.filled", flag, "export", runs["dir"] / "chat", "--out", out, "--store", runs["store"])
    second = medsyn("export", runs["dir"] / "fewshot", "--out", out, "--store", runs["store"])
    _one_line(second, f"output folder {out} is locked by process {first.pid}")
    flag.unlink()  # let the first one finish
    assert first.wait(timeout=300) == 0
    assert len(lines(out / "data" / "train.jsonl")) == len(lines(runs["dir"] / "chat" / NOTES_FILE))


def test_the_card_shows_an_attached_graph_only_control(runs: dict, tmp_path: Path) -> None:
    report = tmp_path / "upsample"
    report.mkdir()
    row = {
        "set": "chat",
        "mix": "real 1 + syn 1",
        "seeds": 3,
        "gain": [1.18, 0.97],
        "control_gain": [0.83, 1.12],
        "text_adds": [0.35, 0.31],
        "rare_gain": [9.31, 2.25],
        "control_rare_gain": [8.33, 2.25],
        "rare_text_adds": [0.98, 0.85],
    }
    (report / "text_adds.json").write_text(json.dumps({"classifier": "char TF-IDF", "dev": "dev_v1", "sets": [row]}))
    out = tmp_path / "ds"
    r = medsyn("export", runs["dir"] / "chat", "--out", out, "--store", runs["store"], "--evaluation", report)
    assert r.returncode == 0, r.stderr
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| chat | real 1 + syn 1 | +1.18 ± 0.97 | +0.83 ± 1.12 | +0.35 ± 0.31 |" in card
    assert "No evaluation was attached" not in card and "char TF-IDF" in card
    (report / "text_adds.json").write_text(json.dumps({"sets": []}))
    r = medsyn(
        "export", runs["dir"] / "chat", "--out", tmp_path / "ds2", "--store", runs["store"], "--evaluation", report
    )
    assert r.returncode == 2 and "--no-control" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ds2").exists()


def test_export_writes_privacy_figures_into_the_card_and_prov(runs: dict, tmp_path: Path) -> None:
    """`--privacy REPORT` (an `eval privacy` report) and `--check-privacy` (the checks run on the exported notes) put
    the attack AUCs and goals in the card, export.json, privacy.json and prov.ttl (ms:PrivacyAssessment)."""
    from pyoxigraph import RdfFormat, Store

    from medsyn.evaluation.data import default_dev, default_train, read_notes
    from medsyn.evaluation.privacy import PrivacyRun, assess_privacy
    from medsyn.evaluation.privacy_report import write_privacy_report

    report = tmp_path / "privacy"
    train, dev = read_notes(default_train()), read_notes(default_dev())
    chat = read_notes(runs["dir"] / "chat", name="chat")
    results, _ = assess_privacy([chat], train, dev, 0, rare=set(), n_boot=50, pii=False)
    write_privacy_report(report, PrivacyRun(results, None, "train", "dev", [], "none", 0, 50))
    data = json.loads((report / "privacy.json").read_text(encoding="utf-8"))
    out = tmp_path / "ds"
    r = medsyn("export", runs["dir"] / "chat", "--out", out, "--store", runs["store"], "--privacy", report)
    assert r.returncode == 0, r.stderr
    card = (out / "README.md").read_text(encoding="utf-8")
    s = data["sets"][0]
    char_all = next(a for a in s["attacks"] if a["attack"] == "char" and a["population"] == "all")
    assert "## Privacy: membership inference and personal data" in card and f"{char_all['auc']:.3f} (" in card
    verdict = "the goal is met" if s["meets_auc_goal"] else "**fails the goal**"
    assert f"`{s['name']}`: " in card and verdict in card and "No privacy assessment" not in card
    assert json.loads((out / "export.json").read_text())["privacy"]["sets"][0]["worst_auc"] == s["worst_auc"]
    # The shown population needs every real note a prompt showed, from run folders and export folders alike.
    few = read_notes(runs["dir"] / "fewshot")
    assert all(len(n.shots) == 3 for n in few.notes)
    by_idx = {x["idx"]: tuple(x["example_ids"]) for x in lines(out / "data" / "train.jsonl")}
    assert {n.id: n.shots for n in read_notes(out).notes} == by_idx and all(by_idx.values())
    store = Store()
    store.load((out / "prov.ttl").read_bytes(), format=RdfFormat.TURTLE)
    q = (
        "PREFIX ms: <https://w3id.org/medsyn/ontology#> PREFIX prov: <http://www.w3.org/ns/prov#> "
        "SELECT ?auc ?worst WHERE { ?a a ms:PrivacyAssessment , prov:Activity ; prov:used [ a prov:Entity ] ; "
        "ms:highestAttackAuc ?worst ; ms:attackResult [ ms:attack 'char' ; ms:population 'all' ; ms:auc ?auc ] }"
    )
    rows = list(store.query(q))
    assert len(rows) == 1 and float(rows[0]["auc"].value) == pytest.approx(char_all["auc"])
    assert float(rows[0]["worst"].value) == pytest.approx(s["worst_auc"])

    out2 = tmp_path / "ds2"
    r = medsyn("export", runs["dir"] / "fewshot", "--out", out2, "--store", runs["store"], "--check-privacy")
    assert r.returncode == 0, r.stderr
    measured = json.loads((out2 / "privacy.json").read_text(encoding="utf-8"))
    assert measured["sets"][0]["name"] == "ds2" and measured["real_pii"]["n"] == 848
    assert "## Privacy: membership inference" in (out2 / "README.md").read_text(encoding="utf-8")
    r = medsyn(
        "export",
        runs["dir"] / "chat",
        "--out",
        tmp_path / "ds3",
        "--store",
        runs["store"],
        "--privacy",
        report,
        "--check-privacy",
    )
    assert r.returncode == 2 and "not both" in r.stderr and not (tmp_path / "ds3").exists()
