"""The format of a ``medsyn export`` folder: its layout, record fields and readers.

Layout of an export folder (written as a whole, atomically: :func:`medsyn.atomic.atomic_dir`)::

    DIR/README.md            the dataset card (Hugging Face YAML front matter + the facts, medsyn.sharing.card)
    DIR/data/train.jsonl     the records (or data/train.parquet), one per accepted note
    DIR/export.json          the manifest: inputs, counts, near-copy figures, record fields (read by eval)
    DIR/notes_per_code.png   the notes-per-code plot of the card
    DIR/lineage.rq           a SPARQL query listing a note's lineage in the provenance graph (runs only)

It depends on nothing above :mod:`medsyn.jsonl`, so the evaluation readers (:mod:`medsyn.evaluation.data`) and
the card read an export without importing the exporter (:mod:`medsyn.sharing.export`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from medsyn.errors import InputError
from medsyn.jsonl import read_jsonl

Format = Literal["jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("jsonl", "parquet")
MANIFEST = "export.json"
DATA_DIR = "data"
NEAR_COPY_JACCARD = 0.8
NEAR_COPY_N = 5
SPLIT = "train"
SCORE_KEYS = ("recall", "similarity", "words", "repetition", "novelty", "unseen_phrases")
"""The filter's numeric scores a record keeps (None where its run did not measure one), beside ``nonwords``."""
FIELDS: dict[str, str] = {
    "idx": "note id (a generate note id, or the authors' idx)",
    "code": "3-character ICD-10 category (the RuMedTop3 label)",
    "symptoms": "the note text (RuMedTop3's field name)",
    "split": "always 'train' (synthetic notes are training data)",
    "requested_symptoms": "the symptoms the prompt asked for",
    "subcode": "the sampled ICD-10 code the symptoms came from",
    "model": "model name",
    "backend": "generation backend (openai, llamacpp, local) or 'authors'",
    "adapter_hash": "sha256 of the LoRA adapter, if any",
    "template": "prompt template name",
    "template_hash": "prompt template content hash",
    "run_id": "medsyn generate run id",
    "kg_version": "graph version the sample was drawn from",
    "scores": "quality-filter scores (recall, similarity, words, repetition, novelty, unseen_phrases; nonwords: "
    "the words no dictionary knew); null where the run did not measure one",
    "example_ids": "ids of the real example notes shown in the prompt (their text is not here)",
    "sources": "knowledge sources the note drew on",
    "license": "licence of the record (its most restrictive source)",
    "non_commercial": "true when a source forbids commercial use",
    "near_copy": "true when the note copies a real note (only with --on-near-copy flag)",
    "near_copy_jaccard": "highest word 5-gram Jaccard against a real note of the graph",
    "origin": "'medsyn generate' or the authors' file name",
}


def data_file(fmt: str) -> str:
    return f"{DATA_DIR}/{SPLIT}.{fmt}"


def _arrow_schema() -> Any:
    import pyarrow as pa

    s = pa.string()
    return pa.schema(
        [
            ("idx", s),
            ("code", s),
            ("symptoms", s),
            ("split", s),
            ("requested_symptoms", pa.list_(s)),
            ("subcode", s),
            ("model", s),
            ("backend", s),
            ("adapter_hash", s),
            ("template", s),
            ("template_hash", s),
            ("run_id", s),
            ("kg_version", s),
            ("scores", pa.struct([(k, pa.float64()) for k in SCORE_KEYS] + [("nonwords", pa.list_(s))])),
            ("example_ids", pa.list_(s)),
            ("sources", pa.list_(s)),
            ("license", s),
            ("non_commercial", pa.bool_()),
            ("near_copy", pa.bool_()),
            ("near_copy_jaccard", pa.float64()),
            ("origin", s),
        ]
    )


def write_records(records: Sequence[Mapping[str, Any]], path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(list(records), schema=_arrow_schema()), path)


def read_export_records(folder: str | Path) -> list[dict[str, Any]]:
    """The records of an export folder (either format)."""
    d = Path(folder)
    manifest = read_manifest(d)
    path = d / manifest["data_file"]
    if not path.is_file():
        raise InputError(f"the export names {manifest['data_file']}, which is missing", path=d)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several kinds for a damaged file
            raise InputError(f"unreadable Parquet file: {exc}", path=path) from None
    return [rec for _, rec in read_jsonl(path)]


def read_manifest(folder: str | Path) -> dict[str, Any]:
    p = Path(folder) / MANIFEST
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError:
        raise InputError(f"not a medsyn export folder (no {MANIFEST})", path=Path(folder)) from None
    except ValueError:
        raise InputError("invalid JSON", path=p) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data_file"), str):
        raise InputError("no 'data_file' string", path=p)
    return doc


def is_export(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()
