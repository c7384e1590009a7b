"""Generation: samples -> prompts -> backend -> reply parsing -> quality filter -> records + provenance.

Step 3 of the data path. :func:`generate` (:mod:`~medsyn.generation.engine`) writes a run folder
(:mod:`~medsyn.generation.run_folder`) of records (:mod:`~medsyn.generation.records`) and records each note's
PROV-O lineage (:mod:`~medsyn.generation.provenance`). A prompt is a JSON file in ``generation/prompts/``; a backend is
a class registered with :func:`register_backend` (or a plugin's ``medsyn.backends`` entry point) whose constructor's
keyword parameters are its options (:func:`backend_options`).
"""

from medsyn.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "generate": "engine",
        "agenerate": "engine",
        "GenerationConfig": "config",
        "RunSummary": "config",
        "NOTES_FILE": "run_folder",
        "FAILURES_FILE": "run_folder",
        "RUN_FILE": "run_folder",
        "SAMPLES_FILE": "run_folder",
        "read_note_records": "run_folder",
        "failure_reasons": "run_folder",
        "load_run_samples": "run_folder",
        "get_backend": "backends",
        "register_backend": "backends",
        "available_backends": "backends",
        "backend_options": "backends",
        "configured_backend": "backends",
        "ChatRequest": "backends",
        "Completion": "backends",
        "load_template": "prompts",
        "list_templates": "prompts",
        "PromptTemplate": "prompts",
        "FilterConfig": "filter",
        "score_note": "filter",
        "decide": "filter",
        "pii_kinds": "pii",
        "parse_reply": "replies",
    },
)
