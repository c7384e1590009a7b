"""The paper's sampler (the authors' ``make_taskgen.py``): example note, sub-code, 2..5 distinct symptoms.

Per sample: one real example note of the category, uniformly and with replacement among its notes of at least
``min_words`` words; a code drawn uniformly among the category's codes that have symptoms; then ``k`` uniform in
2..5 (capped at the number of symptoms of the code) distinct symptoms of that code, in random order.
"""

from __future__ import annotations

import numpy as np

from medsyn.samples import Sample, sample_id
from medsyn.strategies.base import FloatArray, IntArray, distinct_uniform, pick_from
from medsyn.strategies.tables import SamplingTables

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
        m = np.array([len(tables.code_symptoms[c]) for c in codes], dtype=np.int64)
        k = np.minimum(MIN_SYMPTOMS + (u[:, 3] * (MAX_SYMPTOMS - MIN_SYMPTOMS + 1)).astype(np.int64), m)
        j = np.arange(MAX_SYMPTOMS)
        # Swap targets of the partial Fisher-Yates, j + floor(u * (m - j)), for all samples at once.
        steps = j + (u[:, 4 : 4 + MAX_SYMPTOMS] * np.maximum(m[:, None] - j, 1)).astype(np.int64)
        picks = distinct_uniform(steps).tolist()
        out = []
        for i, (c, n, kk) in enumerate(zip(codes.tolist(), notes.tolist(), k.tolist(), strict=True)):
            pool = tables.code_symptoms[c]
            picked = [pool[p] for p in picks[i][:kk]]
            out.append(
                Sample(
                    id=sample_id(seed, self.name, start + i),
                    index=start + i,
                    strategy=self.name,
                    seed=seed,
                    code=tables.code_notation[c],
                    category=tables.cat_notation[cats[i]],
                    symptoms=[tables.sym_label[s] for s in picked],
                    symptom_iris=[tables.sym_iri[s] for s in picked],
                    disease_name=tables.code_label[c],
                    example_id=tables.note_id[n] if n >= 0 else None,
                    example_text=tables.note_text[n] if n >= 0 else None,
                    kg_version=tables.kg_version,
                )
            )
        return out
