"""Sharing: generated notes as a dataset folder others can use (RuMedTop3 records, provenance fields, licences,
a Hugging Face card), with no real note inside.

Step 5 of the data path. :func:`export` writes the folder; :mod:`~medsyn.sharing.folder` is its format (read by
evaluation), :mod:`~medsyn.sharing.card` its card.
"""

from medsyn.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "ExportReport": "export",
        "read_export_records": "folder",
        "read_manifest": "folder",
        "render_card": "card",
    },
)
