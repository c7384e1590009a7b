"""The paper's job end to end at the paper's size: 41,185 notes planned by weight over the graph's codes.

    .venv/bin/python benchmarks/paper_scale.py --store .medsyn/store [--total 41185] [--label 41k]

Works on a COPY of ``--store`` (compacted once first, so a one-time rewrite of the built graph is not charged to the
notes). Stages, each the CLI as users run it, in its own process (peak RSS from ``wait4``):

1. ``generate --plan weights --total N`` through the ``openai`` backend against ``medsyn.testing.openai_server``
   (its own process, fixed latency 0.2 s) at concurrency 64: ideal = 64 / 0.2 = 320 attempts/s;
2. ``audit verify``; 3. ``export --format parquet``; 4. ``eval quality`` (its distinguishability AUC on at most
   ``--auc-max`` 5,000 notes a class: a cross-validated classifier over all 41k would cost minutes and tell no
   more; ``--jobs N`` passes ``eval quality --jobs N``); 5. one ``eval upsample`` point
   (seed 0, all real train, synthetic = 0.5 of it, no synthetic-only run).

Also reports how many of the paper's 219 codes the plan reaches (the authors' released sets give the 105 of their
train split) and why not the rest. Writes ``<out>/<label>.json`` and ``<out>/<label>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generation import start_server  # noqa: E402

AUTHORS_SETS = ROOT.parent / "shared" / "data" / "medsyn" / "synthetic"
NO_EXAMPLES = "no real note of >= 30 words (N_exmp = 0, so weight 0; --override C=N plans it anyway)"
GOALS = {"generation_share_of_ideal": 0.9, "stage_s_at_41k": 120.0, "store_kb_per_note": 10.0}


def du(path: Path) -> int:
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_stage(name: str, args: list[str], *, ok: tuple[int, ...] = (0,), timeout: float = 0) -> dict[str, Any]:
    """One CLI command in its own process: wall time, its peak RSS (wait4's rusage) and the load around it; past
    ``timeout`` seconds (0: none) it is stopped and reported as timed out."""
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "medsyn", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer:
        timer.start()
    out = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    timed_out = bool(timer) and not timer.is_alive() and proc.returncode < 0
    if timer:
        timer.cancel()
    if proc.returncode not in ok and not timed_out:
        raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{out[-3000:]}")
    return {
        "stage": name,
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "exit": proc.returncode,
        "timed_out": timed_out,
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "tail": out.strip().splitlines()[-3:],
    }


def coverage(store: Path, total: int) -> dict[str, Any]:
    """How many of the paper's codes the weights plan reaches, and why not the others."""
    from medsyn.kg.store import OxigraphStore
    from medsyn.sampling.tables import code_weights
    from medsyn.sampling.weights import plan_counts

    kg = OxigraphStore(store, read_only=True, lock=False)
    try:
        ws = code_weights(kg, sources="wikimed", min_words=30)
    finally:
        kg.close()
    plan = plan_counts(ws, total)
    by_cat = {w.category: w for w in ws}
    paper: set[str] = set()
    for f in ("gpt4_train.jsonl", "ru_llama2_13b_ckpt_last_train.jsonl", "ru_llama2_7b_ckpt_last_train.jsonl"):
        p = AUTHORS_SETS / f
        if p.exists():
            paper |= {json.loads(line)["code"] for line in p.read_text(encoding="utf-8").splitlines() if line.strip()}
    why: dict[str, list[str]] = {"not a category of the graph": [], NO_EXAMPLES: [], "no symptoms": []}
    for c in sorted(paper):
        w = by_cat.get(c)
        if w is None:
            why["not a category of the graph"].append(c)
        elif plan.get(c, 0) == 0:
            why[NO_EXAMPLES if w.n_examples == 0 else "no symptoms"].append(c)
    planned = {c for c, n in plan.items() if n > 0}
    return {
        "graph_categories": len(ws),
        "weighted_categories": sum(w.weight > 0 for w in ws),
        "planned_categories": len(planned),
        "paper_codes_released": len(paper),
        "paper_codes_planned": len(paper & planned),
        "paper_codes_missing": {k: v for k, v in why.items() if v},
        "planned_outside_paper": len(planned - paper),
    }


def store_facts(store: Path) -> dict[str, Any]:
    """Quads of the run graphs and notes recorded (accepted and rejected)."""
    from medsyn.kg.store import OxigraphStore

    kg = OxigraphStore(store, read_only=True, lock=False)
    try:
        runs = [g for g in kg.named_graphs() if "/graph/run/" in g.value]
        quads = sum(sum(1 for _ in kg.raw.quads_for_pattern(None, None, None, g)) for g in runs)
        notes = kg.query(
            "PREFIX ms: <https://w3id.org/medsyn/ontology#> "
            "SELECT (COUNT(?n) AS ?c) WHERE { GRAPH ?g { ?n a ms:SyntheticNote } }"
        )[0]["c"].value
        return {
            "run_quads": quads,
            "notes_in_store": int(notes),
            "quads_per_note": round(quads / max(1, int(notes)), 2),
        }
    finally:
        kg.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, default=ROOT / ".medsyn" / "store", help="built store to copy")
    ap.add_argument("--total", type=int, default=41185)
    ap.add_argument("--label", default=None)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--stages", default="generate,verify,export,quality,upsample")
    ap.add_argument(
        "--auc-max", type=int, default=5000, help="eval quality --auc-max: notes per class in the AUC (0: all)"
    )
    ap.add_argument("--jobs", type=int, default=1, help="eval quality --jobs: processes/threads (the same figures)")
    ap.add_argument("--stage-timeout", type=float, default=0, help="stop a stage after verify past this (s)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "reports" / "scale")
    a = ap.parse_args()
    label = a.label or f"{a.total}"
    stages = a.stages.split(",")
    work = a.work or Path(tempfile.mkdtemp(prefix="paper_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    store, gen, exp = work / "store", work / "run", work / "export"
    for p in (exp, work / "quality", work / "upsample"):
        shutil.rmtree(p, ignore_errors=True)
    base_raw = du(a.store)
    if "generate" in stages:  # else: the later stages again, on the run of an earlier call with the same --work
        for p in (store, gen):
            shutil.rmtree(p, ignore_errors=True)
        shutil.copytree(a.store, store)
        import pyoxigraph

        s = pyoxigraph.Store(str(store))
        s.optimize()  # the graph's one-time rewrite (bulk-loaded files grow when first compacted): not the notes'
        del s
    base = du(store)
    report: dict[str, Any] = {
        "label": label,
        "total": a.total,
        "machine": f"{os.cpu_count()} CPUs, {os.uname().sysname} {os.uname().machine}",
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "latency_s": a.latency,
        "concurrency": a.concurrency,
        "auc_max": a.auc_max,
        "quality_jobs": a.jobs,
        "ideal_attempts_per_s": round(a.concurrency / a.latency, 1),
        "base_store_mb": round(base_raw / 2**20, 1),
        "base_store_compacted_mb": round(base / 2**20, 1),
        "coverage": coverage(store, a.total),
        "stages": [],
    }
    print(json.dumps(report["coverage"], ensure_ascii=False), flush=True)
    proc, url = start_server(a.latency)
    try:
        if "generate" in stages:
            r = run_stage(
                "generate",
                [
                    "generate",
                    "--plan",
                    "weights",
                    "--total",
                    str(a.total),
                    "--store",
                    str(store),
                    "--out",
                    str(gen),
                    "--base-url",
                    url,
                    "--concurrency",
                    str(a.concurrency),
                    "--max-retries",
                    "0",
                    "--no-progress",
                ],
                ok=(0, 1),  # 1: "incomplete", some samples used up their attempts (the test server's notes)
            )
            summary = json.loads(next(line for line in r["tail"] if line.startswith("{")))
            r["notes"] = summary["accepted"]
            r["attempts"] = summary["attempts"]
            r["attempts_per_s"] = round(summary["attempts"] / r["wall_s"], 1)
            r["engine_attempts_per_s"] = round(summary["attempts"] / summary["elapsed_s"], 1)
            r["share_of_ideal"] = round(r["attempts_per_s"] / report["ideal_attempts_per_s"], 3)
            r["store_mb"] = round(du(store) / 2**20, 1)
            r["folder_mb"] = round(du(gen) / 2**20, 1)
            r |= store_facts(store)
            r["store_kb_per_note"] = round((du(store) - base) / 1024 / r["notes_in_store"], 2)
            report["stages"].append(r)
            print(json.dumps(r, ensure_ascii=False), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    notes = next((s["notes"] for s in report["stages"] if s["stage"] == "generate"), None)
    if notes is None and (gen / "notes.jsonl").is_file():
        notes = sum(1 for _ in (gen / "notes.jsonl").open(encoding="utf-8"))
    more = {
        "verify": (["audit", "verify", str(gen), "--store", str(store)], gen),
        "export": (["export", str(gen), "--out", str(exp), "--format", "parquet", "--store", str(store)], exp),
        "quality": (
            [
                "eval",
                "quality",
                "--synthetic",
                str(gen),
                "--auc-max",
                str(a.auc_max),
                "--jobs",
                str(a.jobs),
                "--out",
                str(work / "quality"),
            ],
            work / "quality",
        ),
        "upsample": (
            [
                "eval",
                "upsample",
                "--synthetic",
                str(gen),
                "--seeds",
                "0",
                "--real-shares",
                "1",
                "--syn-shares",
                "0.5",
                "--no-synthetic-only",
                "--out",
                str(work / "upsample"),
            ],
            work / "upsample",
        ),
    }
    for name in stages:
        if name not in more:
            continue
        args, folder = more[name]
        r = run_stage(name, args, timeout=a.stage_timeout)
        r["notes_per_s"] = round(notes / r["wall_s"], 1) if notes and not r["timed_out"] else None
        r["store_mb"] = round(du(store) / 2**20, 1)
        r["folder_mb"] = round(du(folder) / 2**20, 1)
        report["stages"].append(r)
        print(json.dumps(r, ensure_ascii=False), flush=True)
        report["load_end"] = [round(x, 2) for x in os.getloadavg()]
        write(report, a.out, label)  # after each stage: a long run stopped later keeps what it measured
    report["load_end"] = [round(x, 2) for x in os.getloadavg()]
    write(report, a.out, label)
    if a.work is None:
        shutil.rmtree(work, ignore_errors=True)


def table(report: dict[str, Any]) -> str:
    rows = [
        "| stage | wall s | CPU s | notes/s | peak RSS MB | store MB | folder MB | load (1 min) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in report["stages"]:
        rate = s.get("attempts_per_s") if s["stage"] == "generate" else s.get("notes_per_s")
        wall = ("> " if s.get("timed_out") else "") + str(s["wall_s"])
        rows.append(
            f"| {s['stage']} | {wall} | {s['cpu_s']} | {rate} | {s['peak_rss_mb']} | {s['store_mb']} "
            f"| {s['folder_mb']} | {s['load_before']} -> {s['load_after']} |"
        )
    return "\n".join(rows)


def goals(report: dict[str, Any]) -> list[str]:
    """Each goal of issue #24 with the measured figure and whether it is met (the stage-time goal is for 41k)."""
    by = {s["stage"]: s for s in report["stages"]}
    out = []
    if "generate" in by:
        g = by["generate"]
        share, kb = g["share_of_ideal"], g["store_kb_per_note"]
        out.append(
            f"generation {share:.0%} of the ideal (goal >= {GOALS['generation_share_of_ideal']:.0%}): "
            + ("met" if share >= GOALS["generation_share_of_ideal"] else "NOT met")
        )
        out.append(
            f"store {kb} KB a note (goal <= {GOALS['store_kb_per_note']}): "
            + ("met" if kb <= GOALS["store_kb_per_note"] else "NOT met")
        )
    for name in ("verify", "export", "quality"):
        if name in by:
            t = by[name]["wall_s"]
            out.append(
                f"{name} {t} s (goal < {GOALS['stage_s_at_41k']:.0f} s at 41k): "
                + ("met" if t < GOALS["stage_s_at_41k"] else "NOT met")
            )
    return out


def write(report: dict[str, Any], out: Path, label: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report["goals"] = goals(report)
    (out / f"{label}.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    g = next((s for s in report["stages"] if s["stage"] == "generate"), {})
    c = report["coverage"]
    md = [
        f"# Paper scale: {report['total']} samples ({label})",
        "",
        f"Machine: {report['machine']}; load average at start {report['load_start']}, at end {report['load_end']}.",
        f"Test server latency {report['latency_s']} s, concurrency {report['concurrency']}: ideal "
        f"{report['ideal_attempts_per_s']} attempts/s. Generate's rate is attempts/s (accepted and rejected notes).",
        "",
        table(report),
        "",
        *[f"- {line}" for line in report["goals"]],
        "",
        f"Generation: {g.get('notes')} notes accepted of {g.get('attempts')} attempts, {g.get('share_of_ideal')} of "
        f"the ideal ({g.get('engine_attempts_per_s')} attempts/s inside the engine, without start-up); "
        f"{g.get('quads_per_note')} quads and {g.get('store_kb_per_note')} KB of store a note (base store "
        f"{report['base_store_mb']} MB, {report['base_store_compacted_mb']} MB compacted).",
        "",
        f"Codes: the graph has {c['graph_categories']} categories, {c['weighted_categories']} with weight > 0; the "
        f"plan reaches {c['planned_categories']}. Of the {c['paper_codes_released']} codes in the authors' released "
        f"sets, {c['paper_codes_planned']} are planned; missing: "
        + ("; ".join(f"{k}: {len(v)} ({', '.join(v[:8])})" for k, v in c["paper_codes_missing"].items()) or "none")
        + ".",
        "",
    ]
    (out / f"{label}.md").write_text("\n".join(md), encoding="utf-8")
    print(table(report))


if __name__ == "__main__":
    main()
