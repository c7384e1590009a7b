"""Curation: validated, atomic, recorded changes to the knowledge graph, and the tools around them.

Edits (:mod:`~medsyn.curation.edits`) are tried on a copy as a change set (:mod:`~medsyn.curation.changeset`) and
commit only if SHACL and the SPARQL checks pass; :mod:`~medsyn.curation.diff` compares two versions,
:mod:`~medsyn.curation.check` lists work for curators, :mod:`~medsyn.curation.owl` round-trips the ontology with
Protégé, :mod:`~medsyn.curation.snapshot` saves and restores.
"""

from medsyn.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "add_symptom": "edits",
        "remove_symptom": "edits",
        "relabel": "edits",
        "merge_symptoms": "edits",
        "commit": "edits",
        "Plan": "edits",
        "Candidate": "changeset",
        "diff_stores": "diff",
        "diff_paths": "diff",
        "OntoDiff": "diff",
        "owl_bytes": "owl",
        "export_owl": "owl",
        "import_owl": "owl",
        "restore": "snapshot",
    },
)
