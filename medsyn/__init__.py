"""MedSyn: synthetic clinical notes from a Medical Knowledge Graph and LLMs, with PROV-O provenance.

The library API is what the CLI calls; a notebook user can call it directly::

    >>> from medsyn.kg.vocab import code_iri
    >>> code_iri("A00.1").value
    'https://w3id.org/medsyn/id/icd10/A00.1'
"""

__version__ = "0.1.0"
