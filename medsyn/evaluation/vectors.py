"""A code classifier that reads meaning: mean navec word vectors under one hidden layer.

Character n-grams reward a note for sharing spellings with the real notes of its code, so a bare symptom list can
score as well as prose. This model sees each note as the mean of its words' navec vectors (Russian, 300-d, trained
on news; the file ships inside the ``natasha`` wheel, so nothing is downloaded), then a ReLU layer of ``hidden``
units trained with Adam (scikit-learn's ``MLPClassifier``, CPU, one BLAS thread, about 15 s a fit of 5,000 notes).
A word navec does not know is looked up by its pymorphy3 lemma, then dropped. Paraphrase and word order count for
nothing here either, but synonyms land near each other, which is what a note that says more than its list can gain
from.

>>> from medsyn.evaluation.classifier import ClassifierConfig
>>> clf = VectorClassifier(ClassifierConfig(kind="vectors", hidden=16, vector_epochs=200))
>>> clf = clf.fit(["боль в спине", "боль в пояснице", "кашель и насморк", "насморк, кашель"],
...               ["M54", "M54", "J06", "J06"], seed=0)
>>> clf.top_k(["сильный кашель"], k=1)
[['J06']]
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from medsyn.errors import InputError
from medsyn.evaluation.classifier import ClassifierConfig, ranked_codes
from medsyn.textsim import tokens

NAVEC_FILE = "data/emb/navec_news_v1_1B_250K_300d_100q.tar"
DIM = 300


@lru_cache(maxsize=1)
def navec() -> Any:
    """The navec news vectors shipped inside the ``natasha`` wheel (loaded once per process, ~0.7 s)."""
    spec = importlib.util.find_spec("natasha")
    if spec is None or spec.origin is None:
        raise InputError("--classifier vectors needs the natasha package (pip install natasha==1.6.0)")
    path = Path(spec.origin).parent / NAVEC_FILE
    if not path.is_file():
        raise InputError("navec vectors are missing from the installed natasha package", path=path)
    from navec import Navec

    return Navec.load(str(path))


@lru_cache(maxsize=200_000)
def _vector(word: str) -> np.ndarray | None:
    vectors = navec()
    if word in vectors:
        return np.asarray(vectors[word], dtype=np.float32)
    from medsyn.generation.mentions import analyse

    for lemma in sorted(analyse(word).lemmas):
        if lemma in vectors:
            return np.asarray(vectors[lemma], dtype=np.float32)
    return None


def embed(texts: Sequence[str]) -> np.ndarray:
    """One row per text: the mean of its known words' vectors (zeros when it has none)."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, text in enumerate(texts):
        found = [v for w in tokens(text) if (v := _vector(w.lower())) is not None]
        if found:
            out[i] = np.mean(found, axis=0)
    return out


class VectorClassifier:
    """Ranks ICD-10 categories from mean word vectors; same interface as the TF-IDF ``CodeClassifier``."""

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        self.config = config or ClassifierConfig(kind="vectors")
        self.classes_: np.ndarray = np.array([], dtype=object)
        self._model: Any = None
        self._scale: tuple[np.ndarray, np.ndarray] | None = None

    def fit(self, texts: Sequence[str], codes: Sequence[str], *, seed: int = 0) -> VectorClassifier:
        from sklearn.neural_network import MLPClassifier

        if len(texts) != len(codes):
            raise InputError(f"{len(texts)} texts but {len(codes)} codes")
        if len(set(codes)) < 2:
            raise InputError("training set needs at least two distinct codes")
        x = embed(texts)
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        self._scale = (mean, std)
        self._model = MLPClassifier(
            hidden_layer_sizes=(self.config.hidden,),
            max_iter=self.config.vector_epochs,
            batch_size=min(128, len(texts)),
            random_state=seed,
        )
        # Small matrices: BLAS threads only contend with each other (and with parallel fits of the grid).
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            # A fixed epoch budget is the setting; the "did not converge" warning is expected.
            warnings.simplefilter("ignore")
            self._model.fit((x - mean) / std, np.asarray(codes, dtype=object))
        self.classes_ = np.asarray(self._model.classes_, dtype=object)
        return self

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None or self._scale is None:
            raise RuntimeError("fit the classifier first")
        mean, std = self._scale
        with threadpool_limits(limits=1):
            return np.asarray(self._model.predict_proba((embed(texts) - mean) / std))

    def top_k(self, texts: Sequence[str], k: int = 3) -> list[list[str]]:
        return ranked_codes(self.decision(texts), self.classes_, k)
