"""Draw the notes of the labelled filter table (tests/data/note_labels.tsv), unlabelled, with a fixed seed.

    python scripts/label_sample.py > note_labels.unlabelled.tsv

120 of our own accepted notes (docs/reports/local-v1/notes.jsonl), 60 of the authors' GPT-4 notes (with the symptom
lists that prompted them, paired by rank: ``attach_requested``) and 60 real RuMedTop3 train notes (no list). The
label and why columns are left empty for the annotator. A newline inside a note is written as the two characters
``\\n`` and a tab as a space, so each note stays one TSV row (``medsyn.evaluation.note_labels.read_labels`` undoes it).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from medsyn.evaluation.data import (
    attach_requested,
    default_requested,
    default_synthetic,
    default_train,
    read_notes,
    read_requested,
)

SEED = 22
COUNTS = {"own": 120, "gpt4": 60, "real": 60}
OWN = Path(__file__).resolve().parent.parent / "docs" / "reports" / "local-v1" / "notes.jsonl"
COLUMNS = ("source", "id", "code", "requested", "note", "label", "why")


def _cell(text: str) -> str:
    return text.replace("\t", " ").replace("\r", "").replace("\n", "\\n")


def main() -> None:
    gpt4, paired = attach_requested(read_notes(default_synthetic()[0]), read_requested(default_requested()))
    if not paired:
        sys.exit("gpt4_train.jsonl and train_sampled.jsonl do not pair by code")
    sets = {"own": read_notes(OWN).notes, "gpt4": gpt4.notes, "real": read_notes(default_train()).notes}
    rng = random.Random(SEED)
    out = sys.stdout
    out.write("\t".join(COLUMNS) + "\n")
    for source, n in COUNTS.items():
        for note in rng.sample(sets[source], n):
            row = (source, note.id, note.code, " | ".join(note.requested), note.text, "", "")
            out.write("\t".join(_cell(c) for c in row) + "\n")


if __name__ == "__main__":
    main()
