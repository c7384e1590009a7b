"""Fault injection: kill -9 `generate`, `kg build` and curation at random points, run the next command, and count
what was lost or corrupted. Every count but "intact" must be 0; the exit code is 1 otherwise.

Each round runs the real `medsyn` entry point in a subprocess against a real store (the wikimed + register build
of the real data) and a local OpenAI-compatible server; a round takes a few seconds, so the default finishes in a
few minutes on 2 cores and ``--n 1`` (what the test suite runs) in well under a minute.

    .venv/bin/python benchmarks/fault_injection.py [--n 6] [--seed 0] [--only generate,build,export,...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

MEDSYN = [sys.executable, "-m", "medsyn"]
NOTES = 12
ENV = {**os.environ, "OPENAI_API_KEY": ""}
KINDS = ("generate", "build", "curation", "concurrent", "export", "merge", "finetune")
SWAP_POINTS = ("swap.filled", "swap.aside", "swap.done")
"""Fault points of a folder replace (medsyn.faults): written, old renamed aside, new renamed in."""


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEDSYN, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*MEDSYN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True
    )


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], delay: float, timeout: float = 120) -> bool:
    """kill -9 ``proc`` ``delay`` seconds after ``ready()``; False when it finished first."""
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return True


def _paused(point: str, *args: str, flag: Path) -> subprocess.Popen[bytes]:
    """A `medsyn` stopped at fault point ``point`` (it creates ``flag`` there and waits while it exists), or one
    that ended without reaching it (then the round counts no kill)."""
    env = {**ENV, "MEDSYN_PAUSE_AT": point, "MEDSYN_PAUSE_FILE": str(flag)}
    proc = subprocess.Popen(
        [*MEDSYN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def _kill_paused(proc: subprocess.Popen[bytes], flag: Path) -> bool:
    """kill -9 a process stopped at its fault point; False when it never got there."""
    if not flag.exists() or proc.poll() is not None:
        proc.wait(timeout=300)
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    flag.unlink()
    return True


def _hidden(folder: Path) -> list[Path]:
    """Work folders of a folder replace left beside ``folder`` (``.<name>.building-*``, ``.<name>.old-*``)."""
    return [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]


def _jsonl(path: Path) -> tuple[list[dict[str, object]], int]:
    """Records of a JSONL file and the number of lines that do not parse (torn)."""
    if not path.exists():
        return [], 0
    recs, torn = [], 0
    for line in path.read_bytes().splitlines():
        try:
            recs.append(json.loads(line))
        except ValueError:
            torn += 1
    return recs, torn


def _leftovers(store: Path) -> list[Path]:
    return [p for p in store.parent.iterdir() if p.name.startswith(f".{store.name}.")]


# ------------------------------------------------------------------------------------------------ rounds
def generate_round(rng: random.Random, work: Path, base_url: str) -> Counter[str]:
    from medsyn.audit import verify
    from medsyn.kg.store import OxigraphStore
    from medsyn.sampling.samples import write_samples
    from medsyn.testing import demo_samples

    c: Counter[str] = Counter(runs=1)
    samples, out, store = work / "samples.jsonl", work / "out", work / "store"
    write_samples(samples, demo_samples(NOTES, seed=rng.randrange(1000)))
    OxigraphStore(store).close()
    args = ["generate", "--samples", str(samples), "--base-url", base_url, "--out", str(out), "--store", str(store),
            "--concurrency", "3", "--no-progress"]  # fmt: skip
    at_lines = rng.randrange(NOTES)
    c["killed"] += _kill_when(
        _start(*args),
        lambda: (out / "notes.jsonl").exists() and (out / "notes.jsonl").read_bytes().count(b"\n") >= at_lines,
        rng.uniform(0, 0.2),
    )
    done = _run(*args)
    notes, torn = _jsonl(out / "notes.jsonl")
    c["torn lines"] += torn
    ids = Counter(str(n["id"]) for n in notes)
    per_sample = Counter(str(n["sample_id"]) for n in notes)
    c["duplicates"] += sum(v - 1 for v in ids.values() if v > 1) + sum(v - 1 for v in per_sample.values() if v > 1)
    c["notes lost"] += NOTES - len(per_sample)
    with OxigraphStore(store, read_only=True) as st:
        report = verify(st, out)
    c["provenance mismatches"] += len(report.altered) + len(report.missing) + len(report.unrecorded)
    bad = done.returncode != 0 or torn or c["duplicates"] or c["notes lost"] or c["provenance mismatches"]
    c["intact"] += not bad
    return c


def build_round(rng: random.Random, work: Path, base: Path, build_s: float) -> Counter[str]:
    from pyoxigraph import Literal, NamedNode, Quad

    from medsyn.kg.store import OxigraphStore
    from medsyn.kg.version import graph_version
    from medsyn.kg.vocab import GRAPH

    c: Counter[str] = Counter(runs=1)
    store = work / "store"
    shutil.copytree(base, store)
    run_graph = NamedNode(GRAPH + "run/fault")
    with OxigraphStore(store) as s:
        s.add_quads([Quad(NamedNode("urn:fault:note"), NamedNode("urn:fault:p"), Literal("x"), run_graph)])
        version = graph_version(s)
    proc = _start("kg", "build", "-q", "--store", str(store), "--sources", "wikimed")
    c["killed"] += _kill_when(proc, lambda: True, rng.uniform(0.3, build_s * 1.1))
    after = _run("kg", "stats", "--store", str(store))  # the next command recovers what the kill left
    ok = after.returncode == 0 and "Traceback" not in after.stderr
    if not ok:
        c["stores corrupt"] += 1
    else:
        with OxigraphStore(store, read_only=True) as s:
            if graph_version(s) != version:
                c["stores corrupt"] += 1
                ok = False
            if not any(True for _ in s.raw.quads_for_pattern(None, None, None, run_graph)):
                c["provenance lost"] += 1
                ok = False
    if _leftovers(store):
        c["leftover folders"] += 1
        ok = False
    c["intact"] += ok
    return c


def curation_round(rng: random.Random, work: Path, base: Path) -> Counter[str]:
    from medsyn.kg.queries import run_named
    from medsyn.kg.store import OxigraphStore

    c: Counter[str] = Counter(runs=1)
    store = work / "store"
    shutil.copytree(base, store)
    label = f"симптом сбоя {rng.randrange(10**6)}"
    proc = _start(
        "onto", "add-symptom", "M54.5", label, "--weight", str(rng.choice([0.5, 2, 7])), "--store", str(store)
    )
    c["killed"] += _kill_when(proc, lambda: True, rng.uniform(0.5, 4.0))
    with OxigraphStore(store, read_only=True) as s:
        linked = bool(s.query("ASK { ?s ?p ?o FILTER(STR(?o) = ?label) }", bindings={"label": label}))
        recorded = any(label in str(r.get("change", "")) for r in run_named(s, "curation/history"))
        stale = len(run_named(s, "checks/weight_not_normalised"))
    c["partial changes"] += linked != recorded
    c["stale weights"] += bool(stale)
    again = _run("onto", "history", "--store", str(store))  # the store opens read-write again
    c["stores corrupt"] += again.returncode != 0
    c["intact"] += linked == recorded and not stale and again.returncode == 0
    return c


def concurrent_round(rng: random.Random, work: Path, base: Path, base_url: str) -> Counter[str]:
    """A second writer while the first runs: refused (one line, exit 2) and the first completes."""
    from medsyn.kg.store import OxigraphStore
    from medsyn.sampling.samples import write_samples
    from medsyn.testing import demo_samples

    c: Counter[str] = Counter(runs=1)
    store, out, samples = work / "store", work / "out", work / "samples.jsonl"
    shutil.copytree(base, store)
    OxigraphStore(work / "other").close()
    write_samples(samples, demo_samples(NOTES, seed=rng.randrange(1000)))
    build = subprocess.Popen(
        [*MEDSYN, "kg", "build", "-q", "--store", str(store), "--sources", "wikimed"], env=ENV,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while not list(store.parent.glob(f".{store.name}.building-*")) and build.poll() is None:
        time.sleep(0.01)
    try:
        serve = _run("serve", "--store", str(store), "--port", "0", timeout=60)
        refused = serve.returncode == 2 and len(serve.stderr.strip().splitlines()) == 1
    except subprocess.TimeoutExpired:  # it served: the store was not locked
        refused = False
    build.wait(timeout=300)

    def gen(st: Path) -> list[str]:
        return ["generate", "--samples", str(samples), "--base-url", base_url, "--out", str(out), "--store", str(st),
                "--concurrency", "2", "--no-progress"]  # fmt: skip

    first = _start(*gen(work / "other"))
    while not (out / "notes.jsonl").exists() and first.poll() is None:
        time.sleep(0.01)
    second = _run(*gen(store))
    refused = refused and second.returncode == 2 and "locked by process" in second.stderr
    first.wait(timeout=300)
    notes, _ = _jsonl(out / "notes.jsonl")
    c["second writer not refused"] += not refused
    c["duplicates"] += len(notes) - len({str(n["id"]) for n in notes})
    c["intact"] += refused and build.returncode == 0 and len(notes) == NOTES
    return c


def export_round(rng: random.Random, work: Path, run: Path, store: Path) -> Counter[str]:
    """kill -9 an export inside its folder swap (a random point of it), then export again: the dataset folder is
    whole (the old or the new one, never half) and no work folder is left."""
    c: Counter[str] = Counter(runs=1)
    ds, flag = work / "ds", work / "flag"
    args = ["export", str(run), "--out", str(ds), "--store", str(store)]
    first = _run(*args).returncode == 0
    c["killed"] += _kill_paused(_paused(rng.choice(SWAP_POINTS), *args, flag=flag), flag)
    whole = (ds / "export.json").is_file() and (ds / "README.md").is_file() and (ds / "data").is_dir()
    c["folders missing after the kill"] += not (
        whole or any(p.name.startswith(f".{ds.name}.old-") for p in _hidden(ds))
    )
    again = _run(*args)
    recs, torn = _jsonl(ds / "data" / "train.jsonl")
    c["folders half-written"] += torn + (not recs) + (not (ds / "export.json").is_file())
    c["leftover folders"] += len(_hidden(ds))
    c["intact"] += first and again.returncode == 0 and bool(recs) and not torn and not _hidden(ds)
    return c


def merge_round(rng: random.Random, work: Path, adapter: Path) -> Counter[str]:
    """kill -9 a merge once its model is written, before the rename: the rerun removes the work folder and ends
    with a whole model folder."""
    c: Counter[str] = Counter(runs=1)
    out, flag = work / "merged", work / "flag"
    args = ["merge", str(adapter), "--out", str(out)]
    c["killed"] += _kill_paused(_paused("swap.filled", *args, flag=flag), flag)
    c["folders half-written"] += out.exists()
    again = _run(*args, timeout=600)
    whole = all((out / f).is_file() for f in ("config.json", "medsyn_merged.json", "model.safetensors"))
    c["folders half-written"] += not whole
    c["leftover folders"] += len(_hidden(out))
    c["intact"] += again.returncode == 0 and whole and not _hidden(out)
    return c


def finetune_round(rng: random.Random, work: Path, args: list[str]) -> Counter[str]:
    """Two `finetune` into one --out: the second is refused while the first holds it; the first is killed -9 and
    the same command run again ends with a whole adapter (manifest, matching hash) and no temp folder in --out."""
    from medsyn.training.models import MANIFEST_NAME, adapter_hash

    c: Counter[str] = Counter(runs=1)
    out, flag = work / "adapter", work / "flag"
    cmd = ["finetune", *args, "--out", str(out), "--seed", str(rng.randrange(100))]
    first = _paused("finetune.restart", *cmd, "--restart", flag=flag)
    second = _run(*cmd, timeout=600)
    refused = second.returncode == 2 and "locked by process" in second.stderr
    c["second writer not refused"] += not refused
    c["killed"] += _kill_paused(first, flag)
    again = _run(*cmd, timeout=600)
    manifest = json.loads((out / MANIFEST_NAME).read_text("utf-8")) if (out / MANIFEST_NAME).is_file() else {}
    whole = manifest.get("complete") is True and manifest.get("adapter_hash") == adapter_hash(out)
    c["folders half-written"] += not whole
    stale = [p for p in out.iterdir() if p.name.startswith(".adapter.")] if out.is_dir() else []
    c["leftover folders"] += len(stale)
    c["intact"] += refused and again.returncode == 0 and whole and not stale
    return c


def _export_setup(tmp: Path, base_url: str) -> tuple[Path, Path]:
    """A store with real example notes and one generated run recorded in it (what an export needs)."""
    from medsyn.kg.build import build_kg
    from medsyn.paths import data_dir
    from medsyn.sampling.samples import write_samples
    from medsyn.testing import demo_samples

    store, run, samples = tmp / "export-base" / "store", tmp / "export-base" / "run", tmp / "export-base" / "s.jsonl"
    build_kg(store, data=data_dir(), sources=["wikimed", "rumedtop3"], progress=False)
    write_samples(samples, demo_samples(NOTES, seed=1))
    done = _run("generate", "--samples", str(samples), "--base-url", base_url, "--out", str(run), "--store",
                str(store), "--no-progress")  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"error: the export round's run failed: {done.stderr.strip()[-300:]}")
    return run, store


def _training_setup(tmp: Path) -> tuple[list[str], Path]:
    """A tiny LLaMA, a small real instruction set, and a 2-step adapter of it: the finetune options and the adapter
    (what the merge and finetune rounds need)."""
    from medsyn.paths import data_dir
    from medsyn.testing.tiny_llama import make_tiny_llama
    from medsyn.training.finetune import TrainConfig, finetune
    from medsyn.training.instructions import (
        BuildOptions,
        build_instructions,
        read_notes,
        symptoms_from_json,
        write_dataset,
    )

    d = tmp / "training-base"
    notes = read_notes(data_dir() / "rumedbench/RuMedTop3/train_v1.jsonl")[:24]
    symptoms = symptoms_from_json(data_dir() / "medsyn/mkg/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json")
    records, _ = build_instructions(notes, symptoms, options=BuildOptions(seed=0, eval_fraction=0.2))
    card = {"records": len(records), "codes": 0, "with_example": 0, "by_task_split": {}, "length_unit": "words",
            "lengths": {}}  # fmt: skip
    write_dataset(records, d / "ift.jsonl", card)
    texts = [r.output for r in records]
    tiny = make_tiny_llama(d / "tiny", vocab_texts=texts, seed=0)
    args = ["--base", str(tiny), "--data", str(d / "ift.jsonl"), "--batch-size", "4", "--micro-batch-size", "4",
            "--max-len", "160", "--max-steps", "2", "--save-every", "1", "--max-eval", "4",
            "--no-progress"]  # fmt: skip
    cfg = TrainConfig(batch_size=4, micro_batch_size=4, max_len=160, max_steps=2, save_every=1, max_eval=4)
    finetune(str(tiny), d / "ift.jsonl", d / "adapter", config=cfg, progress=False)
    return args, d / "adapter"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6, help="rounds per kind (default 6; the test suite runs 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=",".join(KINDS), help="comma-separated kinds: " + ", ".join(KINDS))
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = ap.parse_args()
    kinds = [k for k in args.only.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or args.n < 1:
        sys.exit(f"error: --only takes {', '.join(KINDS)}; --n must be >= 1")

    from medsyn.kg.build import build_kg
    from medsyn.paths import data_dir
    from medsyn.testing.openai_server import FakeOpenAIServer

    rng = random.Random(args.seed)
    totals: dict[str, Counter[str]] = {k: Counter() for k in kinds}
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="medsyn-faults-") as tmp,
        FakeOpenAIServer(latency=0.05, rates={"refusal": 0.1}) as srv,
    ):
        base = Path(tmp) / "base" / "store"
        t0 = time.monotonic()
        build_kg(base, data=data_dir(), sources=["wikimed"], progress=False)
        build_s = time.monotonic() - t0 + 2.0  # + interpreter start of the CLI
        run, export_store = _export_setup(Path(tmp), srv.base_url) if "export" in kinds else (base, base)
        train_args, adapter = _training_setup(Path(tmp)) if {"merge", "finetune"} & set(kinds) else ([], base)
        for i in range(args.n):
            for kind in kinds:
                work = Path(tmp) / f"{kind}-{i}"
                work.mkdir()
                if kind == "generate":
                    totals[kind] += generate_round(rng, work, srv.base_url)
                elif kind == "build":
                    totals[kind] += build_round(rng, work, base, build_s)
                elif kind == "curation":
                    totals[kind] += curation_round(rng, work, base)
                elif kind == "export":
                    totals[kind] += export_round(rng, work, run, export_store)
                elif kind == "merge":
                    totals[kind] += merge_round(rng, work, adapter)
                elif kind == "finetune":
                    totals[kind] += finetune_round(rng, work, train_args)
                elif kind == "concurrent":
                    totals[kind] += concurrent_round(rng, work, base, srv.base_url)
                shutil.rmtree(work, ignore_errors=True)
    failures = sum(v for c in totals.values() for k, v in c.items() if k not in ("runs", "intact", "killed"))
    failures += sum(c["runs"] - c["intact"] for c in totals.values())
    if args.json:
        print(json.dumps({k: dict(v) for k, v in totals.items()}, ensure_ascii=False))
    else:
        for kind, c in totals.items():
            rest = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k not in ("runs", "intact", "killed"))
            print(
                f"{kind:<10} runs {c['runs']}, killed {c['killed']}, intact {c['intact']}"
                + (f"; {rest}" if rest else "")
            )
        print(f"{'all':<10} {failures} failures in {time.monotonic() - started:.0f} s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
