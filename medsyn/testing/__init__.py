"""Real test infrastructure shipped with the package (no mocks): a local OpenAI-compatible HTTP server
(:mod:`medsyn.testing.openai_server`), server processes (:mod:`medsyn.testing.servers`), a tiny LLaMA built on the
spot (:mod:`medsyn.testing.tiny_llama`) and hand-made samples for tests, benchmarks and demos."""

from __future__ import annotations

import random

from medsyn.kg.vocab import symptom_iri
from medsyn.sampling.samples import Sample, sample_id

# A few real symptom strings and example-like notes per category (from the MedSyn symptom map's vocabulary).
_DEMO: dict[str, tuple[str, list[str], str]] = {
    "M54": (
        "M54.5",
        ["боль в пояснице", "онемение ноги", "скованность движений", "боль при наклоне", "прострел"],
        "Боли в поясничном отделе позвоночника после подъёма тяжести, усиливаются при ходьбе.",
    ),
    "J06": (
        "J06.9",
        ["кашель", "боль в горле", "насморк", "повышение температуры", "слабость"],
        "Заложенность носа, першение в горле, температура до 37,8 в течение трёх дней.",
    ),
    "K29": (
        "K29.7",
        ["изжога", "тошнота", "боль в эпигастрии", "отрыжка", "тяжесть после еды"],
        "Жалобы на боли в верхней части живота натощак, периодически изжога.",
    ),
}


def demo_samples(n: int, *, categories: tuple[str, ...] = ("M54", "J06", "K29"), seed: int = 0) -> list[Sample]:
    """``n`` deterministic samples cycling over ``categories`` (2..4 symptoms each, with an example note)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cat = categories[i % len(categories)]
        code, symptoms, example = _DEMO[cat]
        chosen = rng.sample(symptoms, rng.randint(2, 4))
        out.append(
            Sample(
                id=sample_id(seed, "demo", i),
                index=i,
                strategy="demo",
                seed=seed,
                code=code,
                category=cat,
                symptoms=chosen,
                symptom_iris=[symptom_iri(s).value for s in chosen],
                example_id=f"demo-{cat}",
                example_text=example,
                kg_version="demo",
            )
        )
    return out
