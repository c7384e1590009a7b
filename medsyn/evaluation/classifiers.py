"""The code classifiers by kind: one place that turns a :class:`ClassifierConfig` into a model.

>>> type(make_classifier(ClassifierConfig())).__name__
'CodeClassifier'
"""

from __future__ import annotations

from medsyn.evaluation.classifier import Classifier, ClassifierConfig, CodeClassifier


def make_classifier(config: ClassifierConfig | None = None) -> Classifier:
    """The classifier ``config.kind`` names (the word-vector model is imported only when asked for)."""
    cfg = config or ClassifierConfig()
    if cfg.kind == "vectors":
        from medsyn.evaluation.vectors import VectorClassifier

        return VectorClassifier(cfg)
    return CodeClassifier(cfg)
