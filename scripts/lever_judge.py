"""Judge kept candidates (scripts/lever_candidates.py) under filter settings exactly as `generate` would
(`engine.RecordContext`: each candidate's record, the best of the first N by the run's own ranking), then count
what a reader's labels say of each setting's accepted notes (docs/generation.md, "Word salad").

    python scripts/lever_judge.py --samples samples.jsonl --store STORE --candidates 'cands/*.jsonl' \\
        --labels docs/reports/levers/reading/labels.tsv
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from lever_candidates import CONFIG  # the requests the candidates were kept for: one home, or the replay drifts

from medsyn.evaluation.report import markdown_table
from medsyn.generation.backends import Completion
from medsyn.generation.config import GenerationConfig
from medsyn.generation.engine import RecordContext, attempt_requests, with_examples
from medsyn.generation.filter import FilterConfig
from medsyn.generation.fluency import known_phrases, note_vocabulary
from medsyn.kg.notes import real_notes
from medsyn.kg.opener import open_store
from medsyn.sampling.samples import read_samples
from medsyn.textsim import normalised

SETTINGS = {
    "today": FilterConfig(),
    "today + phrasing > 0.6": FilterConfig(max_unseen_phrases=0.6),
    "recall off": FilterConfig(min_recall=0.0),
    "recall off + phrasing > 0.6": FilterConfig(min_recall=0.0, max_unseen_phrases=0.6),
    "recall off + phrasing > 0.5": FilterConfig(min_recall=0.0, max_unseen_phrases=0.5),
    "recall off + phrasing > 0.4": FilterConfig(min_recall=0.0, max_unseen_phrases=0.4),
    "recall >= 0.25 + phrasing > 0.6": FilterConfig(min_recall=0.25, max_unseen_phrases=0.6),
}


def _key(text: str) -> str:
    return text.strip().replace("\n", " / ")


def _judged(
    judge: RecordContext, s: Any, nid: str, reqs: Any, comps: list[Completion], sequential: bool
) -> tuple[dict[str, Any], int]:
    """The kept record of one sample and the candidates it cost. Taken one at a time, each candidate stands for a
    further attempt and the first accepted one is kept; otherwise the run's ranking picks among all of them."""
    if not sequential:
        return judge.record(s, 0, nid, reqs, "-", comps), len(comps)
    rec: dict[str, Any] = {}
    for tried, comp in enumerate(comps, 1):
        rec = judge.record(s, 0, nid, reqs, "-", [comp])
        if rec["accepted"]:
            return rec, tried
    return rec, len(comps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--candidates", required=True, help="glob of the kept-candidate files")
    p.add_argument("--labels", help="a reader's labels (TSV with note and label columns)")
    p.add_argument("--best-of", default="1,3,5")
    p.add_argument("--first-of", default="", help="also: the first accepted of N candidates taken one at a time "
                   "(what `generate --candidates 1 --max-attempts N` does), e.g. 3")  # fmt: skip
    p.add_argument("--template", default="fewshot_expand_ru")
    p.add_argument("--unread-out", help="write the accepted notes the labels lack here (TSV, shuffled), to read")
    a = p.parse_args()
    kept = {}
    for f in sorted(glob.glob(a.candidates)):
        for line in Path(f).read_text(encoding="utf-8").splitlines():
            if line.endswith("}"):
                d = json.loads(line)
                kept[d["sample_id"]] = d
    base = GenerationConfig(**CONFIG, template=a.template)  # type: ignore[arg-type]
    store = open_store(Path(a.store))
    try:
        sampling = {"samples_file": str(Path(a.samples).resolve())}
        samples = [s for s in with_examples(read_samples(Path(a.samples)), store, base, sampling) if s.id in kept]
        notes = real_notes(store)
    finally:
        store.close()
    labels: dict[str, str] = {}
    if a.labels:
        lines = Path(a.labels).read_text(encoding="utf-8").splitlines()
        head = lines[0].split("\t")
        for line in lines[1:]:
            row = dict(zip(head, line.split("\t"), strict=True))
            labels[row["note"]] = row["label"]
    copies = {normalised(t): i for i, t in notes}
    vocabulary, phrases = note_vocabulary(t for _, t in notes), known_phrases(t for _, t in notes)
    template = base.load_template()
    seconds = sum(d["seconds"] for d in kept.values()) / max(len(d["completions"]) for d in kept.values())
    out = []
    unread: dict[str, tuple[str, str, list[str]]] = {}
    one = dataclasses.replace(base, candidates=1)
    policies = [(f"best of {n}", n, False) for n in (int(x) for x in a.best_of.split(","))]
    policies += [(f"first of {n}", n, True) for n in (int(x) for x in a.first_of.split(",") if x)]
    for policy, n, sequential in policies:
        cfg = one if sequential else dataclasses.replace(base, candidates=n)
        for name, flt in SETTINGS.items():
            judge = RecordContext("dump", "llamacpp", "gemma3", template, flt, "graph", copies, vocabulary,
                                  phrases if flt.checks_phrases else None)  # fmt: skip
            counts: Counter[str] = Counter()
            generated = 0  # candidates the policy asks the model for: the cost
            for s in samples:
                nid, reqs = attempt_requests(cfg, template, "dump", s, 0)
                comps = [
                    Completion(text=c["text"], finish_reason=c["finish_reason"]) for c in kept[s.id]["completions"][:n]
                ]
                rec, used = _judged(judge, s, nid, reqs, comps, sequential)
                generated += used
                if rec["accepted"]:
                    key = _key(rec["response"])
                    counts[labels.get(key, "unread")] += 1
                    if key not in labels:
                        requested = " | ".join(rec["symptoms"])
                        unread.setdefault(key, (rec["code"], requested, []))[2].append(f"{name}, {policy}")
            accepted = sum(counts.values())
            plausible = counts["plausible"]
            out.append([f"{name}, {policy}", str(accepted), str(plausible), str(counts["nonsense"]),
                        f"{counts['list']} / {counts['wrong_code']}", str(counts["unread"]),
                        f"{plausible / accepted:.2f}" if accepted else "–",
                        f"{seconds * generated / len(samples) / plausible:.0f}" if plausible else "–"])  # fmt: skip
    head = ["setting", "accepted", "plausible", "nonsense", "list / wrong code", "unread", "precision", "s / plausible"]
    if a.unread_out:
        rows = sorted(unread.items())
        random.Random(1).shuffle(rows)
        lines = ["n\tcode\trequested\tnote\tlabel\taccepted_by"]
        lines += [f"{i}\t{c}\t{r}\t{t}\t\t{'; '.join(by)}" for i, (t, (c, r, by)) in enumerate(rows, 1)]
        Path(a.unread_out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(samples)} samples\n")
    print(markdown_table(head, out))


if __name__ == "__main__":
    main()
