"""One attempt as a record: the JSON object a line of notes.jsonl or failures.jsonl holds.

A record carries the request (the prompt with the real example notes redacted to their ids, and the hash of what was
sent), the reply, the filter's scores and verdict, usage and cost, and the ids provenance is built from. The reply is
parsed (:mod:`medsyn.generation.replies`) and judged (:mod:`medsyn.generation.filter`) here, never by a backend.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Mapping
from typing import Any

from medsyn.generation.backends import Backend, ChatRequest, Completion
from medsyn.generation.filter import FilterConfig, decide, score_note
from medsyn.generation.prompts import PromptTemplate, messages_hash, sample_examples
from medsyn.generation.provenance import content_hash, now_iso
from medsyn.generation.replies import parse_reply
from medsyn.sampling.samples import Sample
from medsyn.textsim import normalised

COPY = "copy"
"""Status of an attempt whose reply is a real note of the graph, word for word."""


def attempt_record(
    *,
    run_id: str,
    backend: Backend,
    template: PromptTemplate,
    filter_config: FilterConfig,
    graph_version: str,
    sample: Sample,
    attempt: int,
    nid: str,
    req: ChatRequest,
    started: str,
    comp: Completion,
    real_copies: Mapping[str, str] | None = None,
    vocabulary: Collection[str] = (),
    phrases: Container[str] | None = None,
) -> dict[str, Any]:
    """The record of attempt ``attempt`` on ``sample``: ``accepted``/``rejected`` with scores when a note came back,
    else the failure's ``status`` and ``reason``.

    ``real_copies`` maps the :func:`~medsyn.textsim.normalised` text of every real note of the graph to its id: a
    reply equal to one is a failed attempt of status ``copy``, its text left out of the record.
    ``vocabulary``: stems the filter takes as known beyond the dictionary (:func:`.fluency.note_vocabulary`);
    ``phrases``: the real notes' word pairs (:func:`.fluency.known_phrases`), for the filter's phrasing check."""
    ended = now_iso()
    rec: dict[str, Any] = {
        "id": nid,
        "run_id": run_id,
        "code": sample.category,
        "subcode": sample.code,
        "model": backend.model,
        "backend": backend.name,
        # The real example notes stand as their ids (prompts.example_marker): a shared notes.jsonl must not
        # carry a hospital's notes. prompt_sha256 is the hash of what was sent, for re-rendering from the graph.
        "prompt": redacted_prompt(template, sample),
        "prompt_sha256": messages_hash(req.messages),
        "symptoms": sample.symptoms,
        "symptom_iris": sample.symptom_iris,
        "example_id": sample.example_id,
        "example_ids": [i for i, _ in sample_examples(sample)[: template.shots or 1] if i],
        "response": None,
        "scores": None,
        "accepted": False,
        "status": "error",
        "reason": "",
        "sample_id": sample.id,
        "attempt": attempt,
        "seed": req.seed,
        "template": template.name,
        "template_hash": template.content_hash,
        "kg_version": sample.kg_version or graph_version,
        "finish_reason": comp.finish_reason,
        "usage": {"prompt_tokens": comp.prompt_tokens, "completion_tokens": comp.completion_tokens},
        "cost_usd": comp.cost_usd,
        "retries": comp.retries,
        "started": started,
        "ended": ended,
    }
    if comp.model and comp.model != backend.model:
        rec["model_reported"] = comp.model
    if comp.extra.get("server"):
        rec["server"] = comp.extra["server"]
    if comp.error is not None:
        rec["reason"] = comp.error
        if comp.permanent:
            rec["permanent"] = True
        return rec
    return _with_reply(rec, comp, sample, template, filter_config, real_copies, vocabulary, phrases)


def _with_reply(
    rec: dict[str, Any],
    comp: Completion,
    sample: Sample,
    template: PromptTemplate,
    filter_config: FilterConfig,
    real_copies: Mapping[str, str] | None,
    vocabulary: Collection[str],
    phrases: Container[str] | None,
) -> dict[str, Any]:
    """``rec`` completed from a completion that came back without an error: the reply, and its scores if any."""
    reply = parse_reply(comp.text, finish_reason=comp.finish_reason, refusal=comp.refusal)
    rec["response"] = reply.text or None
    if not reply.ok:
        rec["status"], rec["reason"] = reply.status, reply.reason
        return rec
    copied = (real_copies or {}).get(normalised(reply.text))
    if copied is not None:
        # A real note written back word for word is a hospital's note, not a synthetic one: it is not kept, and
        # not even in failures.jsonl (which is shared like notes.jsonl), so it gets no provenance either.
        rec.update(response=None, status=COPY, reason=f"copies a real note word for word ({copied}; not kept)")
        return rec
    shown = [t for _, t in sample_examples(sample)[: template.shots or 1]]
    scores = score_note(
        reply.text, sample.symptoms, shown, vocabulary=vocabulary, phrases=phrases, pii=filter_config.reject_pii
    )
    ok, why = decide(scores, filter_config)
    rec.update(
        scores=scores.to_dict(),
        accepted=ok,
        status="accepted" if ok else "rejected",
        reason=why,
        content_hash=content_hash(reply.text),
    )
    return rec


def redacted_prompt(template: PromptTemplate, sample: Sample) -> list[dict[str, str]]:
    """The prompt as recorded: example notes and cue lines stand as markers with their ids."""
    t = template
    if t.mode == "completion":
        return [{"role": "user", "content": t.render_text(sample, redact=True)}]
    return t.render(sample, redact=True)


def candidate_rank(rec: Mapping[str, Any]) -> tuple[Any, ...]:
    """How the filter orders candidate notes of one attempt, best first: accepted, then scored (a note came back),
    then the highest symptom recall, then the most new content over the symptom list (novelty; a record of an
    older filter has none), then the least copied from the shots and the least looping."""
    scores = rec.get("scores") or {}
    return (
        not rec.get("accepted"),
        not scores,
        -float(scores.get("recall", 0.0)),
        -float(scores.get("novelty") or 0.0),
        float(scores.get("similarity", 0.0)),
        float(scores.get("repetition", 0.0)),
    )


def best_of(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """The record of an attempt from its candidates' records (one per completion, same note id): the best by
    :func:`candidate_rank` (the first on a tie), with the usage and cost of all of them, ``candidates`` (N),
    ``candidate`` (the chosen one's number, its seed is the record's ``seed``) and ``candidate_scores`` (each
    candidate's seed, status and scores; no texts). One candidate: its record unchanged."""
    if len(recs) == 1:
        return recs[0]
    chosen = min(range(len(recs)), key=lambda i: (candidate_rank(recs[i]), i))
    rec = dict(recs[chosen])
    rec["usage"] = {
        k: sum(int((r.get("usage") or {}).get(k) or 0) for r in recs) for k in ("prompt_tokens", "completion_tokens")
    }
    rec["cost_usd"] = sum(float(r.get("cost_usd") or 0.0) for r in recs)
    rec["retries"] = sum(int(r.get("retries") or 0) for r in recs)
    rec["candidates"] = len(recs)
    rec["candidate"] = chosen
    rec["candidate_scores"] = [{"seed": r["seed"], "status": r["status"], "scores": r["scores"]} for r in recs]
    return rec
