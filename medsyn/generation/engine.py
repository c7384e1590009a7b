"""The generation engine: samples -> prompts -> backend -> reply parsing -> quality filter -> JSONL + provenance.

The output folder (:mod:`medsyn.generation.run_folder`) holds run.json, samples.jsonl, notes.jsonl and
failures.jsonl.

Resume: the same call on the same directory reads both JSONL files (a torn last line left by ``kill -9`` is cut off),
skips the attempts already recorded, re-adds provenance missing from the store (quads are a function of the
records, so this is idempotent) and generates only what is missing. A line is the commit point of an attempt: it is
written with one ``write`` call before the attempt's provenance.

Scheduling (:mod:`medsyn.generation.scheduler`): every sample is a group wanting one accepted note within
``max_attempts`` attempts; with ``target_per_code=K`` every category is a group wanting K accepted notes, cycling
through its samples, within ``K * max_attempts`` attempts. Transport errors count as attempts within a process, but a
resumed run gives them another chance; permanent errors (``Completion.permanent``: a prompt too long, an HTTP 4xx)
always count.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import shlex
import time
import types
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from medsyn.atomic import atomic_write_text, fsync_file
from medsyn.errors import InputError, StoreError
from medsyn.generation.backends import Backend, ChatRequest
from medsyn.generation.config import GenerationConfig, RunSummary
from medsyn.generation.filter import FilterConfig
from medsyn.generation.fluency import known_phrases, note_vocabulary
from medsyn.generation.progress import Progress, Totals
from medsyn.generation.prompts import PromptTemplate
from medsyn.generation.provenance import RunInfo, add_notes, finish_run, note_id, now_iso, recorded_note_ids, start_run
from medsyn.generation.records import attempt_record, best_of
from medsyn.generation.run_folder import (
    FAILURES_FILE,
    LOCK_FILE,
    LOST,
    NOTES_FILE,
    RUN_FILE,
    SAMPLES_FILE,
    cut_torn_line,
    has_note,
    prepare_out,
    read_note_records,
    sample_line,
    samples_hash,
)
from medsyn.generation.scheduler import Group, Scheduler, make_groups
from medsyn.jsonl import JsonlAppender
from medsyn.kg.notes import real_notes
from medsyn.kg.store import Store
from medsyn.locks import acquire, release
from medsyn.sampling.samples import Sample
from medsyn.textsim import normalised

P = ParamSpec("P")
T = TypeVar("T")

_RUN_JSON_EVERY_S = 5.0
_PROV_BATCH = 256
_PROV_EVERY_S = 0.5
_STORE_FLUSH_NOTES = 4096
"""Notes whose provenance is written between two store flushes: RocksDB keeps every write in memory until a flush,
so without one a run's peak RSS grew with its size (0.33 GB at 3k notes, 2.5 GB at 100k)."""


# ------------------------------------------------------------------------------------------------ the run
def _check_samples(samples: Sequence[Sample], template: PromptTemplate) -> None:
    if not samples:
        raise InputError("nothing to generate: no samples")
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise InputError(f"duplicate sample id {s.id}")
        seen.add(s.id)
        if not s.symptoms:
            raise InputError(f"sample {s.id} has no symptoms")
        template.check_sample(s)


def _graph_version(store: Store, samples: Sequence[Sample]) -> str:
    versions = {s.kg_version for s in samples if s.kg_version}
    if len(versions) == 1:
        return versions.pop()
    from medsyn.kg.version import graph_version

    return graph_version(store) or "unknown"


def _request_seed(seed: int, key: str) -> int:
    return int(hashlib.sha256(f"{seed}\x1f{key}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


async def agenerate(
    samples: Sequence[Sample],
    out_dir: str | Path,
    *,
    store: Store,
    backend: Backend,
    config: GenerationConfig | None = None,
    graph_version: str | None = None,
    sampling: Mapping[str, Any] | None = None,
    progress: bool = False,
    command: Sequence[str] | None = None,
) -> RunSummary:
    """Generate notes for ``samples`` into ``out_dir`` (resuming what is there); see the module docstring.

    ``command``: the command line that started this call, kept in run.json's ``commands`` (one per start) so a
    dataset card can say how to reproduce the set. Call it from a running event loop; :func:`generate` is the same
    call for code without one."""
    cfg = config or GenerationConfig()
    samples = with_examples(samples, store, cfg, sampling)
    engine = _Engine(
        samples,
        Path(out_dir),
        store=store,
        backend=backend,
        config=cfg,
        graph_version=graph_version,
        sampling=sampling,
        command=command,
    )
    try:
        return await engine.run(progress=progress)
    finally:
        await backend.aclose()


def with_examples(
    samples: Sequence[Sample], store: Store, cfg: GenerationConfig, sampling: Mapping[str, Any] | None
) -> Sequence[Sample]:
    """``samples`` with the real example notes of a few-shot template (drawn from the graph, seeded), else as given."""
    template = cfg.load_template()
    if not template.shots:
        return samples
    from medsyn.generation.mentions import mentioned_symptoms
    from medsyn.sampling.draw import add_examples
    from medsyn.sampling.weights import DEFAULT_SOURCES

    # Examples come from the tables of the sources the samples were drawn with (a sample file: the default).
    sources = (sampling or {}).get("sources") or DEFAULT_SOURCES
    # The matcher is passed only when it is used, so runs without these options keep their samples exactly.
    matched = template.shows_symptoms or cfg.shot_selection != "random"
    return add_examples(
        store,
        samples,
        template.shots,
        seed=cfg.seed,
        sources=sources,
        selection=cfg.shot_selection,
        matcher=mentioned_symptoms if matched else None,
    )


def attempt_requests(
    config: GenerationConfig, template: PromptTemplate, run_id: str, s: Sample, a: int
) -> tuple[str, list[ChatRequest]]:
    """The note id of attempt ``a`` on sample ``s`` and its requests (``candidates`` of them, one prompt, distinct
    seeds): one definition for every engine, so they all send the same requests."""
    nid = note_id(run_id, s.id, a)
    t = template
    text = t.render_text(s) if t.mode == "completion" else None
    req = ChatRequest(
        key=nid,
        messages=[{"role": "user", "content": text}] if text is not None else t.render(s),
        # From the seed, the sample and the attempt, not the note id: that holds the run id (creation
        # time), and two fresh runs of one command must write the same notes.
        seed=_request_seed(config.seed, f"{s.id}\x1f{a}"),
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        prompt=text,
        stop=t.stop if t.stop or config.stop is not None else None,
    )
    # Candidate 0 keeps the seed a single completion had; the others' seeds add their number, so an
    # attempt (and a resumed one) always asks for the same N completions.
    extra = [
        dataclasses.replace(req, seed=_request_seed(config.seed, f"{s.id}\x1f{a}\x1f{c}"))
        for c in range(1, config.candidates)
    ]
    return nid, [req, *extra]


@dataclasses.dataclass(frozen=True)
class RecordContext:
    """What turns an attempt's completions into its record besides the attempt itself (picklable, so an engine
    can judge replies in other processes): the run, the backend's name and model, the template, the filter."""

    run_id: str
    backend_name: str
    model: str
    template: PromptTemplate
    filter: FilterConfig
    graph_version: str
    real_copies: Mapping[str, str]
    vocabulary: frozenset[str]
    phrases: frozenset[str] | None = None

    def record(
        self, s: Sample, a: int, nid: str, reqs: Sequence[ChatRequest], started: str, comps: Sequence[Any]
    ) -> dict[str, Any]:
        """The record of one attempt: each candidate's :func:`attempt_record`, the best kept (:func:`best_of`)."""
        who = types.SimpleNamespace(name=self.backend_name, model=self.model)
        return best_of(
            [
                attempt_record(
                    run_id=self.run_id,
                    backend=who,  # type: ignore[arg-type]
                    template=self.template,
                    filter_config=self.filter,
                    graph_version=self.graph_version,
                    sample=s,
                    attempt=a,
                    nid=nid,
                    req=req,
                    started=started,
                    comp=comp,
                    real_copies=self.real_copies,
                    vocabulary=self.vocabulary,
                    phrases=self.phrases,
                )
                for req, comp in zip(reqs, comps, strict=True)
            ]
        )


def _blocking(run: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """``run`` as a plain call with the same signature (one definition of the parameters, not two copies)."""

    @functools.wraps(run)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return asyncio.run(run(*args, **kwargs))

    call.__doc__ = f"The blocking form of :func:`{run.__name__}` (its parameters): {run.__doc__}"
    call.__name__ = call.__qualname__ = run.__name__.removeprefix("a")
    return call


generate = _blocking(agenerate)


class _Engine:
    def __init__(
        self,
        samples: Sequence[Sample],
        out_dir: Path,
        *,
        store: Store,
        backend: Backend,
        config: GenerationConfig,
        graph_version: str | None,
        sampling: Mapping[str, Any] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.sampling = dict(sampling or {})
        self.commands: list[str] = []
        self._command = shlex.join(command) if command else None
        self.samples = list(samples)
        self._sample_lines = [sample_line(s) for s in self.samples]
        self.out = out_dir
        self.store = store
        self.backend = backend
        self.config = config
        self.template = config.load_template()
        _check_samples(self.samples, self.template)
        self.graph_version = graph_version or _graph_version(store, self.samples)
        self.totals = Totals()
        self.attempts_now = 0
        self.status = "running"
        self._prov: list[dict[str, Any]] = []
        self._prov_t = time.monotonic()
        self._prov_writing: asyncio.Task[int] | None = None
        self._unflushed = 0  # notes written to the store since its last flush
        self._appenders: tuple[JsonlAppender, ...] = ()
        self.lost = 0
        # A reply equal to one of these is a real note written back, never kept (records.attempt_record).
        notes = real_notes(store)
        self.real_copies = {normalised(text): nid for nid, text in notes}
        # Words the real notes share beyond pymorphy3's dictionary (medical terms, drugs) are no non-words.
        self.vocabulary = note_vocabulary(text for _, text in notes)
        # Only a run that checks phrasing pays for the pairs (about a second for 4,690 notes).
        self.phrases = known_phrases(t for _, t in notes) if config.filter.checks_phrases else None
        if self.phrases is not None and not notes:
            raise InputError("--max-unseen-phrases needs real notes in the graph to compare with; the store has none")

    # ---------------------------------------------------------------- run identity and run.json
    def _identity(self) -> dict[str, Any]:
        c = self.config
        out: dict[str, Any] = {
            "samples_sha256": samples_hash(self._sample_lines),
            "n_samples": len(self.samples),
            "template": self.template.name,
            "template_hash": self.template.content_hash,
            "backend": self.backend.name,
            "model": self.backend.model,
            "adapter_hash": self.backend.adapter_hash,
            "seed": c.seed,
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
            "max_attempts": c.max_attempts,
            "target_per_code": c.target_per_code,
            "filter": c.filter.describe(),
            "sampling": self.sampling,
        }
        # Added only when set, so the identity (and resume) of runs made before these options is unchanged.
        if c.shot_selection != "random":
            out["shot_selection"] = c.shot_selection
        if c.candidates != 1:
            out["candidates"] = c.candidates
        return out

    def _open_run(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        identity = self._identity()
        ihash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        path = self.out / RUN_FILE
        if path.is_file():
            try:
                prev = json.loads(path.read_text(encoding="utf-8"))
                prev_hash, run_id, created = prev["identity_sha256"], prev["run_id"], prev["created"]
                self.commands = [c for c in prev.get("commands") or [] if isinstance(c, str)]
            except (ValueError, KeyError, TypeError):
                raise InputError("unreadable run file; move the output directory away", path=path) from None
            if prev_hash != ihash:
                diff = sorted(k for k in identity if prev.get("identity", {}).get(k) != identity[k])
                raise InputError(
                    f"{self.out} holds run {run_id} made with other parameters ({', '.join(diff) or 'identity'}); "
                    "rerun the same command to resume it, or choose another --out"
                )
        else:
            if (self.out / NOTES_FILE).exists() or (self.out / FAILURES_FILE).exists():
                raise InputError(f"{self.out} has notes but no {RUN_FILE}; choose another --out")
            created = now_iso()
            run_id = hashlib.sha256(f"{ihash}\x1f{created}".encode()).hexdigest()[:16]
            atomic_write_text(self.out / SAMPLES_FILE, "".join(line + "\n" for line in self._sample_lines))
        self.run = RunInfo(
            run_id=run_id,
            started=created,
            seed=self.config.seed,
            parameters={**identity, "backend_options": self.backend.describe(), "max_cost": self.config.max_cost},
            backend=self.backend.name,
            model=self.backend.model,
            adapter_hash=self.backend.adapter_hash,
            template_name=self.template.name,
            template_hash=self.template.content_hash,
            graph_version=self.graph_version,
        )
        self.identity, self.identity_hash = identity, ihash
        if self._command and self._command not in self.commands:
            self.commands.append(self._command)
        self._write_run_json()
        return identity

    def _write_run_json(self) -> None:
        doc = {
            "run_id": self.run.run_id,
            "created": self.run.started,
            "updated": now_iso(),
            "status": self.status,
            "identity_sha256": self.identity_hash,
            "identity": self.identity,
            "parameters": self.run.parameters,
            "graph_version": self.graph_version,
            "graph": self.run.graph.value,
            "requested": sum(g.quota for g in getattr(self, "groups", [])),
            "totals": self.totals.to_dict(),
            "commands": self.commands,
        }
        stats = self._server_stats()
        if stats is not None:  # this process's transport counts per server (retries and failures included)
            doc["servers"] = stats
        atomic_write_text(self.out / RUN_FILE, json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        self._last_run_json = time.monotonic()

    def _server_stats(self) -> dict[str, Any] | None:
        stats = getattr(self.backend, "server_stats", None)
        return stats() if stats is not None else None

    # ---------------------------------------------------------------- resume
    def _resume(self) -> None:
        for name in (NOTES_FILE, FAILURES_FILE):  # this run holds the folder's lock: it may cut a torn line
            cut_torn_line(self.out / name)
        notes = read_note_records(self.out / NOTES_FILE)
        failures = read_note_records(self.out / FAILURES_FILE)
        by_sample: dict[str, Group] = {}
        for g in self.groups:
            for s in g.slots:
                by_sample[s.id] = g
        seen: set[tuple[str, int]] = set()
        for rec in [*notes, *failures]:
            key = (rec["sample_id"], int(rec["attempt"]))
            g = by_sample.get(rec["sample_id"])
            if g is None or key in seen or rec.get("run_id") != self.run.run_id:
                raise InputError(f"{self.out}: record {rec['id']} does not belong to this run; choose another --out")
            seen.add(key)
            g.used.add(key[1])
            self.totals.add(rec)
            if rec.get("accepted"):
                g.accepted += 1
            if rec.get("status") not in ("error", LOST) or rec.get("permanent"):
                g.counted += 1
        have = recorded_note_ids(self.store, self.run)
        self._record_lost(have, {r["id"] for r in [*notes, *failures]}, by_sample)
        # Provenance of records written just before a crash may be missing: add it (idempotent), once the lines
        # it describes are on disk.
        missing = [r for r in [*notes, *failures] if has_note(r) and r["id"] not in have]
        if missing:
            for name in (NOTES_FILE, FAILURES_FILE):
                fsync_file(self.out / name)
            add_notes(self.store, self.run, missing)

    def _record_lost(
        self, have: Mapping[str, tuple[str, int]], in_folder: set[str], by_sample: dict[str, Group]
    ) -> None:
        """Notes the store recorded but the folder lost (a power loss took the last lines, or an old copy of the
        folder): their attempt numbers are taken, so a new note never gets a recorded id with another text, and a
        ``lost`` line in failures.jsonl says what happened (``audit verify`` still lists them as missing)."""
        lost = sorted((sa, nid) for nid, sa in have.items() if nid not in in_folder)
        if not lost:
            return
        out = JsonlAppender(self.out / FAILURES_FILE)
        try:
            for (sample_id, attempt), nid in lost:
                g = by_sample.get(sample_id)
                if g is None:
                    raise InputError(f"{self.out}: the store records note {nid} of a sample this run does not have")
                g.used.add(attempt)
                rec = {
                    "id": nid,
                    "run_id": self.run.run_id,
                    "sample_id": sample_id,
                    "attempt": attempt,
                    "accepted": False,
                    "status": LOST,
                    "response": None,
                    "reason": "recorded in the store but missing from the output folder; generated again",
                }
                out.write(rec)
                self.totals.add(rec)
        finally:
            out.close()
        self.lost = len(lost)

    async def _attempt_batch(self, jobs: list[tuple[Group, Sample, int]]) -> list[tuple[Any, ...]]:
        """Each job's requests (``candidates`` of them, one prompt, distinct seeds) and their completions."""
        prepared = [(g, s, a, *attempt_requests(self.config, self.template, self.run.run_id, s, a)) for g, s, a in jobs]
        started = now_iso()
        comps = await self.backend.complete([r for p in prepared for r in p[4]])
        out, k = [], 0
        for p in prepared:
            n = len(p[4])
            out.append((*p, started, comps[k : k + n]))
            k += n
        return out

    # ---------------------------------------------------------------- main loop
    async def run(self, *, progress: bool) -> RunSummary:
        prepare_out(self.out)
        lock = self.out / LOCK_FILE
        acquire(lock, f"output folder {self.out}")
        try:
            return await self._run(progress=progress)
        finally:
            release(lock)

    async def _run(self, *, progress: bool) -> RunSummary:
        t0 = time.monotonic()
        self.groups = make_groups(self.samples, self.config)
        self._open_run()
        start_run(self.store, self.run)
        self._resume()
        sched = Scheduler(self.groups)
        notes_out = JsonlAppender(self.out / NOTES_FILE)
        fail_out = JsonlAppender(self.out / FAILURES_FILE)
        self._appenders = (notes_out, fail_out)
        bar = Progress(progress, sum(g.quota for g in self.groups), self.totals.accepted)
        try:
            if await self._loop(sched, bar):
                self.status = "budget"
            elif all(g.accepted >= g.quota for g in self.groups):
                self.status = "done"
            else:
                self.status = "incomplete"
        except BaseException:
            self.status = "interrupted"
            raise
        finally:
            bar.close()
            try:
                await self._provenance_written()
                self._flush_provenance()
            finally:
                notes_out.close()
                fail_out.close()
            self._record_end()
        # A run's many provenance transactions leave a write-ahead log and level-0 files that only a compaction
        # folds (51 KB a note without it at 10k notes); an interrupted run skips it, its rerun compacts.
        self.store.compact()
        t = self.totals
        return RunSummary(
            run_id=self.run.run_id,
            out_dir=self.out,
            status=self.status,
            requested=sum(g.quota for g in self.groups),
            accepted=t.accepted,
            rejected=t.rejected,
            failed=t.failed,
            attempts=t.attempts,
            prompt_tokens=t.prompt_tokens,
            completion_tokens=t.completion_tokens,
            cost_usd=t.cost_usd,
            elapsed_s=time.monotonic() - t0,
            generated_now=self.attempts_now,
            lost=self.lost,
        )

    async def _loop(self, sched: Scheduler, bar: Progress) -> bool:
        """Run attempts until every group is finished; True when the cost budget stopped it. This process's loop:
        up to the backend's concurrency of batches in flight (:mod:`medsyn.generation.ray_engine` has another)."""
        in_flight: set[asyncio.Task[list[tuple[Any, ...]]]] = set()
        budget_hit = False
        notes_out, fail_out = self._appenders
        try:
            while True:
                while len(in_flight) < self.backend.max_concurrency and not budget_hit:
                    if self._over_budget(len(in_flight)):
                        budget_hit = True
                        break
                    jobs = sched.take(self.backend.batch_size)
                    if not jobs:
                        break
                    in_flight.add(asyncio.create_task(self._attempt_batch(jobs)))
                if not in_flight:
                    return budget_hit
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                self._handle(done, sched, notes_out, fail_out)
                await self._maybe_flush_provenance()
                bar.update(self.totals, self.attempts_now)
                if time.monotonic() - self._last_run_json > _RUN_JSON_EVERY_S:
                    self._write_run_json()
        except BaseException:
            for t in in_flight:
                t.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*in_flight, return_exceptions=True)
            raise

    def _over_budget(self, in_flight: int) -> bool:
        cap = self.config.max_cost
        if cap is None:
            return False
        spent = self.totals.cost_usd
        avg = spent / self.totals.attempts if self.totals.attempts else 0.0
        # Reserve the average cost of each request in flight (and of the next one) so the budget is not overshot.
        return spent + avg * (in_flight + 1) > cap or spent >= cap

    def _handle(
        self,
        done: set[asyncio.Task[list[tuple[Any, ...]]]],
        sched: Scheduler,
        notes_out: JsonlAppender,
        fail_out: JsonlAppender,
    ) -> None:
        judge = self.judge()
        for task in done:
            for g, s, a, nid, reqs, started, comps in task.result():
                self._commit(g, judge.record(s, a, nid, reqs, started, comps), sched)

    def judge(self) -> RecordContext:
        """What judges this run's replies (see :class:`RecordContext`)."""
        return RecordContext(
            run_id=self.run.run_id,
            backend_name=self.backend.name,
            model=self.backend.model,
            template=self.template,
            filter=self.config.filter,
            graph_version=self.graph_version,
            real_copies=self.real_copies,
            vocabulary=self.vocabulary,
            phrases=self.phrases,
        )

    def _commit(self, g: Group, rec: dict[str, Any], sched: Scheduler) -> None:
        """One attempt's record: its line, the totals, its group (requeued first) and the provenance queue."""
        notes_out, fail_out = self._appenders
        (notes_out if rec["accepted"] else fail_out).write(rec)
        self.totals.add(rec)
        self.attempts_now += 1
        g.in_flight -= 1
        g.counted += 1
        if rec["accepted"]:
            g.accepted += 1
        if has_note(rec):
            self._prov.append(rec)
        sched.requeue(g, front=True)

    async def _maybe_flush_provenance(self) -> None:
        """Provenance is written in batches (one transaction each): it is rebuilt from the JSONL on resume, so a
        crash loses nothing, and large transactions cost far less per note. A batch is written in a thread (the
        store's commit releases the GIL), one at a time, so the loop keeps sending requests and judging replies
        meanwhile instead of stalling ~0.5 ms a note; notes queue for the next batch while one is written."""
        if self._prov_writing is not None:
            if not self._prov_writing.done():
                return
            await self._provenance_written()
        if self._prov and (len(self._prov) >= _PROV_BATCH or time.monotonic() - self._prov_t > _PROV_EVERY_S):
            batch = self._provenance_batch()
            self._prov_writing = asyncio.create_task(asyncio.to_thread(self._write_batch, batch))

    def _write_batch(self, batch: list[dict[str, Any]]) -> int:
        """One provenance batch, and a store flush every ``_STORE_FLUSH_NOTES`` notes: the one write path, run in
        the writer thread during a run, inline for the last batch and for each shard of the Ray engine's driver."""
        n = add_notes(self.store, self.run, batch)
        self._unflushed += n
        if self._unflushed >= _STORE_FLUSH_NOTES:
            self.store.flush()
            self._unflushed = 0
        return n

    async def _provenance_written(self) -> None:
        """Wait for the batch being written (its store error, if any, is raised here)."""
        task, self._prov_writing = self._prov_writing, None
        if task is not None:
            await task

    def _record_end(self) -> None:
        """The run's end time and totals in the store, then ``run.json`` (which has them whatever the store does).

        A store that fails here fails the command: the run's lines are on disk and its notes recorded, and a rerun
        of the same command writes the end record. The one failure left unsaid is one met while the run is already
        being interrupted: that interruption is what the user hears about (and a rerun records the end as well).
        """
        try:
            finish_run(self.store, self.run, ended=now_iso(), totals=self.totals.to_dict())
        except StoreError as exc:
            self._write_run_json()
            if self.status == "interrupted":
                return
            raise StoreError(
                f"the run's notes are safe in {self.out}, but the store did not take the run's end time and totals "
                f"({exc}); rerun the same command to record them"
            ) from None
        self._write_run_json()

    def _flush_provenance(self) -> None:
        """Write the queued provenance now (the end of a run; each finished shard of the Ray engine)."""
        if self._prov:
            self._write_batch(self._provenance_batch())

    def _provenance_batch(self) -> list[dict[str, Any]]:
        """The queued records, taken off the queue once their lines are on disk (a note's line is on disk before
        the store records the note)."""
        for out in self._appenders:
            out.sync()
        batch, self._prov = self._prov, []
        self._prov_t = time.monotonic()
        return batch
