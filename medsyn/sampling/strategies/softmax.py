"""The authors' earlier KG-prior sampler: TF-IDF-weighted symptoms, demographics, a drug and its side effects.

Per sample (after the category, drawn as in the paper strategy):

- a code uniformly among the category's codes with weighted symptoms (HSDN TF-IDF); 1..4 distinct symptoms drawn
  with probabilities ``softmax(weight / T)`` (T = 10 in the authors' config), each step renormalised over the
  symptoms left, then shuffled. The softmax subtracts the largest weight first (HSDN weights reach 4e4, whose
  ``exp`` overflows), and stops early when the symptoms left have probability 0 in double precision.
  A category without weighted symptoms falls back to the paper's symptom sources with uniform weights;
  ``extra["symptom_weighting"]`` says which of the two a sample got;
- one real example note of the category, as in the paper strategy;
- demographics from the population tables (:mod:`medsyn.sampling.demographics`); a sex-restricted code fixes the sex;
- a drug indicated for the code or its category (uniformly), or None when the graph has none; up to 3 of its side
  effects: a count uniform in 0..min(3, n), then drawn without replacement with probability proportional to their
  frequency, each kept with its frequency.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medsyn.errors import InputError
from medsyn.sampling.demographics import Population, load_population
from medsyn.sampling.samples import Sample, sample_id
from medsyn.sampling.strategies.base import (
    FloatArray,
    IntArray,
    distinct_weighted,
    pick_from,
    shuffled,
)
from medsyn.sampling.tables import WEIGHTED_SOURCE, SamplingTables

MIN_SYMPTOMS, MAX_SYMPTOMS = 1, 4
MAX_SIDE_EFFECTS = 3


def softmax_weights(weights: FloatArray, temperature: float) -> FloatArray:
    """Unnormalised ``softmax(weights / T)``: ``exp((w - max w) / T)``.

    >>> softmax_weights(np.array([0.0, 10.0]), 10.0).round(3).tolist()
    [0.368, 1.0]
    """
    if len(weights) == 0:
        return np.asarray(weights, dtype=np.float64)
    return np.exp((weights - weights.max()) / temperature)


class SoftmaxStrategy:
    """Columns: 0 category, 1 example, 2 code, 3 count, 4..7 symptoms, 8..10 shuffle, 11..14 demographics,
    15 drug, 16 side-effect count, 17..19 side effects.

    temperature: T of softmax(weight / T) over a code's weighted symptoms (higher: flatter).
    weighted_source: Source of the weighted symptoms (TF-IDF) in the graph.
    population_dir: Folder of the population tables (default: the shipped ones).
    """

    name = "softmax"
    width = 20
    drugs = True

    def __init__(
        self,
        *,
        temperature: float = 10.0,
        weighted_source: str | None = WEIGHTED_SOURCE,
        population_dir: str | None = None,
    ) -> None:
        t = float(temperature) if isinstance(temperature, int | float) and not isinstance(temperature, bool) else 0.0
        if not (math.isfinite(t) and t > 0):
            raise InputError(
                f"strategy {self.name!r}: option 'temperature' must be a positive number, got {temperature!r}"
            )
        self.temperature = t
        self.weighted_source = weighted_source
        self._population_dir = population_dir
        self._population: Population | None = None

    @property
    def population(self) -> Population:
        if self._population is None:
            from pathlib import Path

            folder = Path(self._population_dir) if self._population_dir else None
            self._population = load_population(folder)
        return self._population

    def draw(self, tables: SamplingTables, cats: IntArray, u: FloatArray, start: int, seed: int) -> list[Sample]:
        notes = pick_from(tables.cat_notes, cats, u[:, 1])
        weighted_lists = tables.cat_weighted_codes or [[] for _ in tables.cat_notation]
        has_weights = np.array([len(weighted_lists[c]) > 0 for c in cats], dtype=bool)
        codes = np.where(
            has_weights, pick_from(weighted_lists, cats, u[:, 2]), pick_from(tables.cat_codes, cats, u[:, 2])
        )
        demo = self.population.from_uniforms(u[:, 11:15], [tables.code_sex[c] for c in codes.tolist()])
        out = []
        for i, c in enumerate(codes.tolist()):
            row = u[i]
            if has_weights[i]:
                ws = tables.code_weighted[c]
                pool, p = ws.symptoms, softmax_weights(ws.weights, self.temperature)
            else:
                pool = tables.code_symptoms[c]
                p = np.ones(len(pool))
            k = min(MIN_SYMPTOMS + int(row[3] * (MAX_SYMPTOMS - MIN_SYMPTOMS + 1)), len(pool))
            picked = shuffled(distinct_weighted(p, row[4 : 4 + k]), row[8:11])
            symptoms = [pool[j] for j in picked]
            n = int(notes[i])
            out.append(
                Sample(
                    id=sample_id(seed, self.name, start + i),
                    index=start + i,
                    strategy=self.name,
                    seed=seed,
                    code=tables.code_notation[c],
                    category=tables.cat_notation[cats[i]],
                    symptoms=[tables.sym_label[s] for s in symptoms],
                    symptom_iris=[tables.sym_iri[s] for s in symptoms],
                    disease_name=tables.code_label[c],
                    example_id=tables.note_id[n] if n >= 0 else None,
                    example_text=tables.note_text[n] if n >= 0 else None,
                    demographics=demo[i],
                    drug=self._drug(tables, c, row),
                    kg_version=tables.kg_version,
                    extra={
                        "symptom_weighting": (self.weighted_source or "uniform") if has_weights[i] else "uniform",
                        "temperature": self.temperature,
                    },
                )
            )
        return out

    def _drug(self, tables: SamplingTables, code: int, row: FloatArray) -> dict[str, Any] | None:
        drugs = tables.code_drugs[code] if tables.code_drugs else []
        if not drugs:
            return None
        d = drugs[min(int(row[15] * len(drugs)), len(drugs) - 1)]
        ses, freq = tables.drug_side_effects[d]
        n = min(int(row[16] * (min(MAX_SIDE_EFFECTS, len(ses)) + 1)), MAX_SIDE_EFFECTS, len(ses))
        picked = distinct_weighted(freq, row[17 : 17 + n]) if n else []
        return {
            "iri": tables.drug_iri[d],
            "name": tables.drug_name[d],
            "side_effects": [
                {"iri": tables.se_iri[ses[j]], "name": tables.se_name[ses[j]], "frequency": float(freq[j])}
                for j in picked
            ],
        }
