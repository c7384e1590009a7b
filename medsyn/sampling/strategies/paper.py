"""The paper's sampler (the authors' ``make_taskgen.py``): example note, sub-code, 2..5 distinct symptoms.

Per sample: one real example note of the category, uniformly and with replacement among its notes of at least
``min_words`` words; a code drawn uniformly among the category's codes that have symptoms; then ``k`` uniform in
2..5 (capped at the number of symptoms of the code) distinct symptoms of that code, in random order.
"""

from __future__ import annotations

import numpy as np

from medsyn.sampling.samples import Sample, sample_id
from medsyn.sampling.strategies.base import FloatArray, IntArray, distinct_uniform, flat_lists, lookup, pick_from
from medsyn.sampling.tables import SamplingTables

MIN_SYMPTOMS, MAX_SYMPTOMS = 2, 5


class PaperStrategy:
    """Columns of a sample's uniform row: 0 category, 1 example, 2 code, 3 count, 4..8 symptoms."""

    name = "paper"
    width = 12
    weighted_source: str | None = None
    drugs = False

    def draw(self, tables: SamplingTables, cats: IntArray, u: FloatArray, start: int, seed: int) -> list[Sample]:
        notes = pick_from(tables.cat_notes, cats, u[:, 1])
        codes = pick_from(tables.cat_codes, cats, u[:, 2])
        flat, offsets, lengths = flat_lists(tables.code_symptoms)
        m = lengths[codes]
        k = np.minimum(MIN_SYMPTOMS + (u[:, 3] * (MAX_SYMPTOMS - MIN_SYMPTOMS + 1)).astype(np.int64), m)
        j = np.arange(MAX_SYMPTOMS)
        # Swap targets of the partial Fisher-Yates, j + floor(u * (m - j)), for all samples at once.
        steps = j + (u[:, 4 : 4 + MAX_SYMPTOMS] * np.maximum(m[:, None] - j, 1)).astype(np.int64)
        picks = distinct_uniform(steps)
        # Symptom table index of every pick; picks past a sample's k (or its m) are cut off below, so clip them
        # into the code's own range rather than read a neighbour's symptoms.
        sym = flat[offsets[codes][:, None] + np.minimum(picks, np.maximum(m[:, None] - 1, 0))]
        # Every per-sample value is gathered column-wise with numpy; the loop below only slices lists and builds
        # the Sample objects, which is what a sample costs in Python.
        labels = lookup(tables.sym_label, sym).tolist()
        iris = lookup(tables.sym_iri, sym).tolist()
        columns = zip(
            lookup(tables.code_notation, codes).tolist(),
            lookup(tables.cat_notation, cats).tolist(),
            lookup(tables.code_label, codes).tolist(),
            lookup(tables.note_id, notes).tolist(),
            lookup(tables.note_text, notes).tolist(),
            k.tolist(),
            labels,
            iris,
            strict=True,
        )
        name, version = self.name, tables.kg_version
        return [
            Sample(
                id=sample_id(seed, name, i),
                index=i,
                strategy=name,
                seed=seed,
                code=code,
                category=cat,
                symptoms=lab[:kk],
                symptom_iris=iri[:kk],
                disease_name=label,
                example_id=note_id,
                example_text=text,
                kg_version=version,
            )
            for i, (code, cat, label, note_id, text, kk, lab, iri) in enumerate(columns, start)
        ]
