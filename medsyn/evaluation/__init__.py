"""Evaluation: do the notes help ICD-10 prediction, and are they good and private?

Step 4 of the data path. :mod:`~medsyn.evaluation.data` reads real splits, the authors' sets, run folders and exports;
:mod:`~medsyn.evaluation.classifier` is the RuMedTop3 baseline; :mod:`~medsyn.evaluation.upsampling` runs the grid;
:mod:`~medsyn.evaluation.quality` measures fidelity, recall, copies and distinguishability;
:mod:`~medsyn.evaluation.report` writes the Markdown reports with their figures; :mod:`~medsyn.evaluation.privacy`
runs membership inference and :mod:`~medsyn.generation.pii` the personal-data scan (``eval privacy``);
:mod:`~medsyn.evaluation.canaries` measures canary exposure of a fine-tuned generator and scans notes for secrets.
"""

from medsyn.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "read_notes": "data",
        "NoteSet": "data",
        "Note": "data",
        "default_train": "data",
        "default_dev": "data",
        "CodeClassifier": "classifier",
        "ClassifierConfig": "classifier",
        "evaluate": "classifier",
        "run_grid": "upsampling",
        "default_grid": "upsampling",
        "summarise": "upsampling",
        "per_code_gain": "upsampling",
        "assess": "quality",
        "code_fidelity": "quality",
        "Quality": "quality",
        "write_upsample_report": "report",
        "write_quality_report": "report",
        "measure_exposure": "canaries",
        "scan_secrets": "canaries",
        "assess_privacy": "privacy",
        "membership": "privacy",
        "PrivacyRun": "privacy",
        "write_privacy_report": "privacy_report",
    },
)
