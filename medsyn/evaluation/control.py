"""The graph-only control: a synthetic set's own samples with no model, their requested symptoms joined as text.

A synthetic note can help ICD-10 prediction for two reasons: the graph chose symptoms of the right disease, or the
model wrote something a real note of that disease would say. The control separates them. Its twin of a set holds,
for every note, the symptoms that note was asked to mention, joined by ", " (same code, same count, same order, so
the upsampling grid draws the same samples for both): the gain of the twin is the graph's, and notes minus twin is
what the text adds (:func:`medsyn.evaluation.upsampling.summarise`).

>>> from pathlib import Path
>>> from medsyn.evaluation.data import Note, NoteSet
>>> notes = NoteSet("own", Path("own"), "generate", [Note("n1", "Жалобы на кашель и насморк.", "J06", "own", 1,
...                                                       ("кашель", "насморк"))])
>>> twin = list_twin(notes)
>>> twin.name, twin.control_of, twin.notes[0].text
('own:lists', 'own', 'кашель, насморк')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from medsyn.evaluation.data import NoteSet, attach_requested

SUFFIX = ":lists"
JOINER = ", "


def list_twin(notes: NoteSet) -> NoteSet | None:
    """The graph-only twin of ``notes``, or None when a note lacks its requested symptoms."""
    if not notes.notes or any(not n.requested for n in notes.notes):
        return None
    texts = [replace(n, text=JOINER.join(n.requested)) for n in notes.notes]
    return NoteSet(notes.name + SUFFIX, notes.path, notes.format, texts, [], control_of=notes.name)


def with_requested(
    sets: Sequence[NoteSet], requested: dict[str, list[tuple[str, ...]]] | None, *, source: str = ""
) -> tuple[list[NoteSet], list[str]]:
    """The sets, those without requested symptoms given them from ``requested`` where their counts per code match
    (:func:`~medsyn.evaluation.data.attach_requested`), and one line per set so paired, naming ``source``."""
    out: list[NoteSet] = []
    notes: list[str] = []
    for s in sets:
        if requested and not any(n.requested for n in s.notes):
            paired, ok = attach_requested(s, requested)
            if ok:
                s = paired
                notes.append(f"{s.name}: requested symptoms paired by rank within code from `{source}`")
        out.append(s)
    return out, notes


def with_controls(
    sets: Sequence[NoteSet], requested: dict[str, list[tuple[str, ...]]] | None = None, *, source: str = ""
) -> tuple[list[NoteSet], list[str]]:
    """Each set followed by its twin, and one line per set saying where its lists came from or why it has none.

    A set without requested symptoms (the authors' RuMedTop3 files) takes them from ``requested`` (the sampled
    symptom sets shipped beside them, ``source`` names the file) when its counts per code match.
    """
    out: list[NoteSet] = []
    paired, notes = with_requested(sets, requested, source=source)
    for s in paired:
        out.append(s)
        twin = list_twin(s)
        if twin is None:
            notes.append(f"{s.name}: no graph-only control (its notes do not carry the symptoms they were asked for)")
        else:
            out.append(twin)
    return out, notes
