"""The dataset card of an export folder: ``README.md`` with Hugging Face YAML front matter and the facts a reader
needs (notes per code, models, templates, graph version and sources with licences, filter thresholds, acceptance
rate, near-copy figures, how to reproduce, and a SPARQL query listing a note's lineage).

>>> size_category(999), size_category(41_185)
('n<1K', '10K<n<100K')
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from medsyn.evaluation.report import markdown_table, pyplot, save_figure, text_adds_table
from medsyn.sharing.folder import FIELDS, NEAR_COPY_JACCARD, NEAR_COPY_N, data_file
from medsyn.sharing.privacy import privacy_section

if TYPE_CHECKING:
    from pathlib import Path

    from medsyn.sharing.export import ExportReport

_LINEAGE = """# The lineage of one exported note in the MedSyn provenance graph (PROV-O, no reasoner needed).
# Run it on the store the notes were generated with: medsyn kg query lineage.rq (or on its SPARQL endpoint).
# Change the note id in VALUES to any `idx` of the dataset.
PREFIX ms: <https://w3id.org/medsyn/ontology#>
PREFIX prov: <http://www.w3.org/ns/prov#>
PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#>

SELECT ?note ?run ?model ?template ?build ?graphVersion
       (GROUP_CONCAT(DISTINCT STR(?input); separator=" ") AS ?used)
       (GROUP_CONCAT(DISTINCT STR(?example); separator=" ") AS ?derivedFrom)
WHERE {
  VALUES ?noteId { "%s" }
  ?note ms:noteId ?noteId ; prov:wasGeneratedBy ?gen .
  ?gen prov:wasInformedBy ?run .
  # The model, template and graph build every note of a run shares are stated once, on the run.
  ?run prov:qualifiedAssociation [ prov:agent ?agent ; prov:hadPlan ?template ] .
  ?agent rdfs:label ?model .
  { ?gen prov:used ?input } UNION { ?run prov:used ?input }
  OPTIONAL { ?gen prov:used ?own . ?own a ms:KnowledgeGraphBuild }
  OPTIONAL { ?run prov:used ?shared . ?shared a ms:KnowledgeGraphBuild }
  BIND(COALESCE(?own, ?shared) AS ?build)
  OPTIONAL { ?build ms:graphVersion ?graphVersion }
  OPTIONAL { ?note prov:wasDerivedFrom ?example }
}
GROUP BY ?note ?run ?model ?template ?build ?graphVersion
"""


def lineage_query(note_id: str = "NOTE_ID") -> str:
    return _LINEAGE % note_id.replace("\\", "").replace('"', "")


def size_category(n: int) -> str:
    """Hugging Face's ``size_categories`` value for ``n`` records."""
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "1M<n<10M"


def card_license(records: list[dict[str, Any]]) -> str:
    licences = {r["license"] for r in records}
    if "cc-by-nc-sa-4.0" in licences:
        return "cc-by-nc-sa-4.0"  # the share-alike, non-commercial terms bind the whole set
    return licences.pop() if len(licences) == 1 else "other"


def plot_per_code(per_code: dict[str, int], path: Path) -> None:
    plt = pyplot()
    codes = sorted(per_code, key=lambda c: (-per_code[c], c))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.22 * len(codes) + 1.5), 3.2))
    ax.bar(range(len(codes)), [per_code[c] for c in codes], color="#4c72b0")
    ax.set_xticks(range(len(codes)))
    ax.set_xticklabels(codes, rotation=90, fontsize=7)
    ax.set_ylabel("notes")
    ax.set_title(f"Notes per ICD-10 code ({sum(per_code.values())} notes, {len(codes)} codes)")
    save_figure(fig, path)


def _front_matter(report: ExportReport) -> str:
    n = len(report.records)
    lic = card_license(report.records)
    lines = [
        "---",
        f"license: {lic}",
        *(["license_name: mixed", "license_details: per record, field `license`"] if lic == "other" else []),
        "language:",
        "- ru",
        "task_categories:",
        "- text-classification",
        "task_ids:",
        "- multi-class-classification",
        "tags:",
        "- medical",
        "- clinical-notes",
        "- synthetic",
        "- icd-10",
        "- rumedtop3",
        "pretty_name: MedSyn synthetic clinical notes",
        "size_categories:",
        f"- {size_category(n)}",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: {data_file(report.format)}",
        "---",
    ]
    return "\n".join(lines) + "\n"


def _runs_section(report: ExportReport) -> list[str]:
    out: list[str] = []
    runs = [s for s in report.sources if s.kind == "run"]
    if runs:
        rows = []
        for s in runs:
            ident = s.run.get("identity") or {}
            totals = s.run.get("totals") or {}
            acc = int(totals.get("accepted", len(s.records)))
            rate = f"{acc / s.attempts:.1%}" if s.attempts else "–"
            f = ident.get("filter") or {}
            thresholds = ", ".join(f"{k} {v}" for k, v in f.items()) or "–"
            rows.append(
                [
                    f"`{s.name}`",
                    f"{ident.get('backend', '?')} / {ident.get('model', '?')}",
                    f"`{ident['adapter_hash'][:12]}`" if ident.get("adapter_hash") else "none",
                    f"{ident.get('template', '?')} (`{str(ident.get('template_hash', ''))[:12]}`)",
                    f"{acc} / {s.attempts} ({rate})",
                    thresholds,
                ]
            )
        out += [
            "## Runs and the quality filter",
            "",
            "Each run's model and adapter, its prompt template (name and content hash), the share of its scored",
            "notes that the quality filter accepted, and the filter's thresholds (symptom recall at least",
            "`min_recall`, shingle similarity to the example note at most `max_similarity`, at least `min_words`",
            "words, repetition at most `max_repetition`; since issue 22.2 also novelty above `max_restatement` and",
            "a non-word rate at most `max_nonword_rate`; where set, a share of word pairs no real note holds at most",
            "`max_unseen_phrases`; a `min_recall` of 0 means the notes need not state the requested symptoms).",
            "Each record's `scores` hold what the filter measured.",
            "",
            markdown_table(["run", "backend / model", "adapter", "template", "accepted / scored", "filter"], rows),
            "",
        ]
    authors = [s for s in report.sources if s.kind == "rumedtop3"]
    if authors:
        out += [
            "## The authors' sets",
            "",
            "Included as published by the MedSyn authors (milteam/MedSyn, RuMedTop3 layout; Hugging Face",
            "Glebkaa/MedSyn-synthetic is marked MIT); they carry no provenance, filter scores or example ids.",
            "",
            markdown_table(["file", "notes"], [[f"`{s.path.name}`", str(len(s.records))] for s in authors]),
            "",
        ]
    return out


def render_card(report: ExportReport) -> str:
    first = next((r["idx"] for r in report.records if r["run_id"]), None)
    parts = [
        _front_matter(report),
        *_intro_section(report),
        *_privacy_section(report),
        *privacy_section(report.privacy),
        "## Fields",
        "",
        markdown_table(["field", "meaning"], [[f"`{k}`", v] for k, v in FIELDS.items()]),
        "",
        "## Notes per code",
        "",
        "![notes per code](notes_per_code.png)",
        "",
        markdown_table(["code", "notes"], [[c, str(n)] for c, n in report.per_code.items()]),
        "",
        *_models_section(report),
        *_runs_section(report),
        *_usefulness_section(report),
        *_licences_section(report),
        "## How to reproduce",
        "",
        *_reproduce(report),
        *_lineage_section(first),
        "## Citation",
        "",
        "Kumichev et al., MedSyn: LLM-based Synthetic Medical Text Generation Framework, ECML PKDD 2024",
        "(arXiv 2408.02056). RuMedTop3: RuMedBench (sb-ai-lab/MedBench).",
        "",
    ]
    return "\n".join(parts)


def _intro_section(report: ExportReport) -> list[str]:
    return [
        "# MedSyn synthetic clinical notes",
        "",
        f"{len(report.records):,} synthetic Russian clinical notes (patient complaints) over {len(report.per_code)} "
        "ICD-10 categories,",
        "written by language models from facts of the MedSyn medical knowledge graph, in the RuMedTop3 layout",
        "(RuMedBench: `idx`, `code`, `symptoms` = the note text), for training ICD-10 code classifiers.",
        "Synthetic: not real patients. Not for clinical use.",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("{"parquet" if report.format == "parquet" else "json"}", '
        f'data_files="{data_file(report.format)}", split="train")',
        "```",
        "",
    ]


def _privacy_section(report: ExportReport) -> list[str]:
    out = [
        "## Privacy: no real note inside",
        "",
        "The prompts of `medsyn generate` show real notes of RuMedTop3 (train split) as style examples; records",
        "name them by id only (`example_ids`), and no prompt is exported. Before writing, every note was compared",
        f"with the {report.real_notes:,} real notes of the graph:",
        "",
        markdown_table(
            ["check", "notes"],
            [
                ["exact copy (same words, case and punctuation ignored)", str(report.exact)],
                [f"near-copy (word {NEAR_COPY_N}-gram Jaccard ≥ {NEAR_COPY_JACCARD})", str(report.near)],
                [f"dropped (`--on-near-copy {report.policy}`)", str(report.dropped)],
                ["kept and flagged (`near_copy: true`)", str(report.flagged)],
            ],
        ),
        "",
    ]
    if report.symptom_labels_real:
        out += [
            f"{report.symptom_labels_real} requested-symptom labels (`requested_symptoms`) equal a whole real",
            "note: the authors' symptom map took some symptoms verbatim from RuMedPrime notes; they are labels",
            "of the published knowledge graph, not notes of this set.",
            "",
        ]
    return out


def _models_section(report: ExportReport) -> list[str]:
    recs = report.records
    models = Counter(
        f"{r['backend']} / {r['model']}" + (f" + adapter {r['adapter_hash'][:12]}" if r["adapter_hash"] else "")
        for r in recs
    )
    templates = Counter(f"{r['template']} (`{(r['template_hash'] or '')[:12]}`)" for r in recs if r["template"])
    out = [
        "## Models and prompt templates",
        "",
        markdown_table(["model", "notes"], [[m, str(n)] for m, n in models.most_common()]),
        "",
    ]
    if templates:
        out += [markdown_table(["prompt template", "notes"], [[t, str(n)] for t, n in templates.most_common()]), ""]
    return out


def _licences_section(report: ExportReport) -> list[str]:
    recs = report.records
    versions = Counter(r["kg_version"] for r in recs if r["kg_version"])
    licences = Counter(r["license"] for r in recs)
    nc = sum(r["non_commercial"] for r in recs)
    sources = [
        [
            f"{s.get('label') or s['source']} (`{s['source']}`)",
            s.get("license") or "?",
            "yes" if s.get("non_commercial") else "no",
        ]
        for s in report.graph_sources
    ]
    return [
        "## Knowledge graph and licences",
        "",
        "Graph versions (content hash of the build, plus a suffix per curator change) the notes were sampled from:",
        "",
        *(
            markdown_table(
                ["graph version", "notes"], [[f"`{v}`", str(n)] for v, n in versions.most_common()]
            ).splitlines()
            if versions
            else ["none recorded"]
        ),
        "",
        "Knowledge sources of that graph. A record's `license` is the most restrictive licence among the sources it",
        f"drew on (`sources`): {NON_COMMERCIAL_NOTE}",
        "",
        markdown_table(["source", "licence", "non-commercial"], sources),
        "",
        markdown_table(["record licence", "notes"], [[k, str(v)] for k, v in licences.most_common()]),
        "",
        f"Notes drawing on a non-commercial source: {nc}.",
        "",
    ]


NON_COMMERCIAL_NOTE = (
    "`cc-by-nc-sa-4.0` when a non-commercial source (SIDER 4.1) contributed, else `apache-2.0` (RuMedTop3's "
    "example notes; the symptom maps are MIT, HSDN CC BY 4.0 (attribution: Zhou et al. 2014, Hetionet), "
    "pharmacotherapydb CC0), `mit` for the authors' sets."
)


def _usefulness_section(report: ExportReport) -> list[str]:
    """What the notes' text adds over the graph: the graph-only control of an attached evaluation, or how to get it."""
    lines = [
        "## Usefulness: what the text adds over the graph",
        "",
        "Synthetic notes can help an ICD-10 classifier because the graph chose the right disease's symptoms, or",
        "because the model wrote what a real note says. The graph-only control tells them apart: the same samples'",
        'requested symptoms joined by ", " as the note text (`requested_symptoms`), trained the same way. *Text adds*',
        "= notes minus control, paired by seed (see MedSyn's docs/evaluation.md).",
        "",
    ]
    ev = report.evaluation
    if not ev:
        return [
            *lines,
            "No evaluation was attached to this export: run `medsyn eval upsample --synthetic <this folder>` and",
            "export again with `--evaluation <its report folder>` to show the figures here.",
            "",
        ]

    return [
        *lines,
        f"Measured on `{ev.get('dev', '?')}` with {ev.get('classifier', '?')}; {ev['sets'][0].get('seeds', '?')} "
        "seeds, accuracy points x100 against real notes only.",
        "",
        text_adds_table(ev["sets"]),
        "",
    ]


def _lineage_section(note_id: str | None) -> list[str]:
    if note_id is None:
        return []  # only the authors' sets: no provenance to query
    return [
        "## Lineage of a note",
        "",
        "Every note of a `medsyn generate` run has W3C PROV-O provenance in the run's named graph: its generation",
        "`prov:used` its code, symptoms and example notes; `prov:wasDerivedFrom` its example notes; the run it",
        "`prov:wasInformedBy` `prov:used` the prompt template and graph build and has the `prov:qualifiedAssociation`",
        "with the model (`prov:Agent`) and the template (`prov:hadPlan`), stated once for all its notes. This query",
        "(also `lineage.rq` here) lists one note's lineage; `medsyn audit note ID` shows it as a tree and",
        "`medsyn audit export-prov RUN` writes a run as PROV-N / PROV-JSON.",
        "",
        "```sparql",
        lineage_query(note_id).rstrip(),
        "```",
        "",
    ]


def _reproduce(report: ExportReport) -> list[str]:
    lines: list[str] = []
    cmds: list[str] = []
    for s in report.sources:
        if s.kind == "run":
            cmds += [c for c in s.run.get("commands") or [] if c not in cmds]
    missing = [s.name for s in report.sources if s.kind == "run" and not s.run.get("commands")]
    if cmds:
        lines += ["The commands that generated the runs (from their run.json), then the export:", "", "```bash"]
        lines += cmds
        lines += [report.command or "medsyn export ...", "```", ""]
    else:
        lines += ["```bash", report.command or "medsyn export ...", "```", ""]
    if missing:
        lines += [
            f"Runs without recorded commands (made before run.json kept them): {', '.join(missing)}; their",
            "parameters are in run.json (`identity`).",
            "",
        ]
    params = [s.run.get("identity") for s in report.sources if s.kind == "run" and s.run.get("identity")]
    if params:
        lines += ["<details><summary>run parameters (run.json identity)</summary>", "", "```json"]
        lines += [json.dumps(p, ensure_ascii=False, indent=1, sort_keys=True) for p in params]
        lines += ["```", "", "</details>", ""]
    return lines
