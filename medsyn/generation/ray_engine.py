"""Generation on a Ray cluster (Ray Data): the same run as :mod:`medsyn.generation.engine`, its attempts mapped over
Parquet shards by Ray instead of one process's event loop.

MedSyn keeps everything a run is judged by: it draws the samples (seeded, as always), opens the run folder and its
identity, schedules the attempts (:mod:`medsyn.generation.scheduler`) and writes notes.jsonl, failures.jsonl, run.json
and the provenance with the functions the single-machine engine uses. Ray Data maps three stages over each round's
shards: prompt rendering (:func:`medsyn.generation.engine.attempt_requests`), the model call (the run's own backend,
built once per Ray worker process from a :class:`~medsyn.generation.backends.BackendSpec`, so requests, seeds,
retries and the server pool are the backend's) and the filter (:class:`medsyn.generation.engine.RecordContext`).
Ray's OpenAI-compatible LLM processor is not used: it would send other requests (no per-request seed, no MedSyn
retries or pool), and the notes would not be the same.

A round is every attempt the scheduler can start (round 0: one per sample; later rounds: the retries of rejected
ones). Its attempts go into ``shards/round-NNNN/in-NNNNN.parquet``, all attempts of a group in one shard; a shard
whose results are all back is written to ``out-NNNNN.parquet`` (atomically), then committed to the JSONL files and the
store. A killed run rerun merges result shards not yet in the JSONL, and runs only the shards of the last round that
have no result: finished shards are skipped. For a deterministic backend the notes are those of the single-machine
engine for the same seed (the same attempts, requests and judge); only the run id, the times and, with a pool, which
server answered differ.

Ray is an optional extra (``pip install 'medsyn[ray]'``), imported only here and only when a run uses it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medsyn.atomic import atomic_write_bytes
from medsyn.errors import InputError, MedsynError
from medsyn.faults import pause_point
from medsyn.generation.backends import Backend, BackendSpec, ChatRequest, Completion
from medsyn.generation.config import GenerationConfig, RunSummary
from medsyn.generation.engine import RecordContext, _blocking, _Engine, attempt_requests, with_examples
from medsyn.generation.progress import Progress
from medsyn.generation.prompts import PromptTemplate
from medsyn.generation.provenance import now_iso
from medsyn.generation.run_folder import FAILURES_FILE, NOTES_FILE, cut_torn_line, read_note_records, sample_line
from medsyn.generation.scheduler import Group, Scheduler
from medsyn.jsonl import JsonlAppender
from medsyn.kg.store import Store
from medsyn.sampling.samples import Sample

if TYPE_CHECKING:
    import pyarrow as pa

SHARDS_DIR = "shards"
SHARD_ROWS = 256
"""Attempts per shard (a group's attempts are never split): the unit a killed run does not redo."""
PAUSE_SHARD_WRITTEN = "ray.shard_written"
"""Fault point (:mod:`medsyn.faults`): a result shard is on disk, its records not yet in the JSONL or the store."""

Job = tuple[Group, Sample, int]


# ------------------------------------------------------------------------------------------ the Ray stages
def _rows(batch: pa.Table) -> list[dict[str, Any]]:
    return batch.to_pylist()


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pylist(rows)


def render_stage(batch: pa.Table, *, config: GenerationConfig, template: PromptTemplate, run_id: str) -> pa.Table:
    """Prompt rendering: each attempt's note id and requests (JSON), exactly as the single-machine engine's."""
    out = []
    for row in _rows(batch):
        nid, reqs = attempt_requests(config, template, run_id, Sample.from_json(row["sample"]), row["attempt"])
        out.append({**row, "nid": nid, "requests": json.dumps([dataclasses.asdict(r) for r in reqs])})
    return _table(out)


def _requests(text: str) -> list[ChatRequest]:
    return [ChatRequest(**{**r, "stop": tuple(r["stop"]) if r["stop"] is not None else None}) for r in json.loads(text)]


class _Caller:
    """One backend (and the event loop its connections live on) per worker process and run: Ray reuses its worker
    processes, so a backend is built once per process however many batches and rounds it serves."""

    def __init__(self, spec: BackendSpec) -> None:
        self.backend = spec.build()
        self.loop = asyncio.new_event_loop()

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = _rows(batch)
        try:
            done = self.loop.run_until_complete(self._all([_requests(r["requests"]) for r in rows]))
        except MedsynError as exc:
            # A run-dooming error (a bad key, an unknown model) travels as data: Ray keeps only the text of a
            # task's exception chain, and the driver must raise MedSyn's one line.
            fatal = json.dumps({"type": type(exc).__name__, "message": str(exc)})
            return _table([{**row, "started": "", "completions": "[]", "fatal": fatal} for row in rows])
        for row, (started, comps) in zip(rows, done, strict=True):
            row["started"] = started
            row["completions"] = json.dumps([dataclasses.asdict(c) for c in comps])
            row["fatal"] = ""
        return _table(rows)

    async def _all(self, jobs: list[list[ChatRequest]]) -> list[tuple[str, list[Completion]]]:
        gate = asyncio.Semaphore(self.backend.max_concurrency)

        async def one(reqs: list[ChatRequest]) -> tuple[str, list[Completion]]:
            async with gate:
                started = now_iso()
                comps: list[Completion] = []
                for k in range(0, len(reqs), self.backend.batch_size):
                    comps += await self.backend.complete(reqs[k : k + self.backend.batch_size])
                return started, comps

        return list(await asyncio.gather(*(one(r) for r in jobs)))


_CALLERS: dict[str, _Caller] = {}


def call_stage(batch: pa.Table, *, spec: BackendSpec, run_id: str) -> pa.Table:
    """The model call: the run's backend (built once in this worker process) over the batch, its own concurrency of
    requests in flight."""
    key = run_id + json.dumps(dataclasses.asdict(spec), sort_keys=True, default=str)
    if key not in _CALLERS:
        _CALLERS[key] = _Caller(spec)
    return _CALLERS[key](batch)


def judge_stage(batch: pa.Table, *, judge: RecordContext) -> pa.Table:
    """The filter: each attempt's record (reply parsed, scored, accepted or rejected), as JSON."""
    out = []
    for row in _rows(batch):
        if row["fatal"]:
            out.append({"shard": row["shard"], "record": "", "fatal": row["fatal"]})
            continue
        comps = [Completion(**c) for c in json.loads(row["completions"])]
        s = Sample.from_json(row["sample"])
        rec = judge.record(s, row["attempt"], row["nid"], _requests(row["requests"]), row["started"], comps)
        out.append({"shard": row["shard"], "record": json.dumps(rec, ensure_ascii=False), "fatal": ""})
    return _table(out)


# ------------------------------------------------------------------------------------------ shards
@dataclass
class _Shard:
    path: Path
    jobs: list[Job]

    @property
    def out(self) -> Path:
        return self.path.with_name(self.path.name.replace("in-", "out-"))


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(_table(rows), buf)
    atomic_write_bytes(path, buf.getvalue())


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable shard ({exc}); move the output folder away", path=path) from None


def _job_row(job: Job) -> dict[str, Any]:
    g, s, a = job
    return {"group": g.key, "sample_id": s.id, "attempt": a, "sample": sample_line(s)}


def _split(jobs: list[Job], rows: int) -> list[list[Job]]:
    """Consecutive shards of about ``rows`` attempts; a group's attempts (consecutive: Scheduler.take) stay together,
    so a shard without its result holds every open attempt of its groups."""
    out: list[list[Job]] = []
    for job in jobs:
        if not out or (len(out[-1]) >= rows and out[-1][-1][0] is not job[0]):
            out.append([])
        out[-1].append(job)
    return out


# ------------------------------------------------------------------------------------------ the engine
class RayEngine(_Engine):
    def __init__(self, *args: Any, spec: BackendSpec, address: str | None, workers: int, shard_rows: int,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.spec, self.address, self.workers, self.shard_rows = spec, address, workers, shard_rows
        self.shards = self.out / SHARDS_DIR

    def _identity(self) -> dict[str, Any]:
        # A run folder belongs to one engine: the other's resume would not know its shards.
        return {**super()._identity(), "engine": "ray"}

    def _server_stats(self) -> dict[str, Any] | None:
        return None  # the backends that sent the requests live in the Ray workers; the records name each server

    def _resume(self) -> None:
        self._merge_shards()
        super()._resume()

    def _merge_shards(self) -> None:
        """Records of result shards the JSONL files do not have yet (a run killed between the two writes)."""
        outs = sorted(self.shards.glob("round-*/out-*.parquet")) if self.shards.is_dir() else []
        if not outs:
            return
        for name in (NOTES_FILE, FAILURES_FILE):
            cut_torn_line(self.out / name)
        have = {r["id"] for name in (NOTES_FILE, FAILURES_FILE) for r in read_note_records(self.out / name)}
        notes, fails = JsonlAppender(self.out / NOTES_FILE), JsonlAppender(self.out / FAILURES_FILE)
        try:
            for path in outs:
                for row in _read_parquet(path):
                    rec = json.loads(row["record"])
                    if rec["id"] not in have:
                        (notes if rec["accepted"] else fails).write(rec)
                        have.add(rec["id"])
        finally:
            notes.close()
            fails.close()

    async def _loop(self, sched: Scheduler, bar: Progress) -> bool:
        ray, started = _connect(self.address)
        try:
            pending = self._open_shards()
            while True:
                if not pending:
                    jobs = sched.take(sys.maxsize)
                    if not jobs:
                        return False
                    pending = self._new_round(jobs)
                self._run_round(pending, sched, bar)
                pending = []
        finally:
            if started:
                ray.shutdown()

    def _rounds(self) -> list[Path]:
        return sorted(self.shards.glob("round-*")) if self.shards.is_dir() else []

    def _new_round(self, jobs: list[Job]) -> list[_Shard]:
        rounds = self._rounds()
        folder = self.shards / f"round-{int(rounds[-1].name.split('-')[1]) + 1 if rounds else 0:04d}"
        folder.mkdir(parents=True)
        shards = [_Shard(folder / f"in-{i:05d}.parquet", part) for i, part in enumerate(_split(jobs, self.shard_rows))]
        for sh in shards:
            _write_parquet(sh.path, [_job_row(j) for j in sh.jobs])
        return shards

    def _open_shards(self) -> list[_Shard]:
        """The shards of the last round that have no result yet, their attempts started again in their groups."""
        rounds = self._rounds()
        if not rounds:
            return []
        groups = {g.key: g for g in self.groups}
        out = []
        for path in sorted(rounds[-1].glob("in-*.parquet")):
            sh = _Shard(path, [])
            if sh.out.exists():
                continue
            for row in _read_parquet(path):
                g = groups.get(row["group"])
                a = int(row["attempt"])
                if g is None or g.slots[a % len(g.slots)].id != row["sample_id"]:
                    raise InputError("shard of another run; move the output folder away", path=path)
                if a in g.used:
                    continue  # recorded already (its line came back from a result shard)
                g.used.add(a)
                g.in_flight += 1
                sh.jobs.append((g, g.slots[a % len(g.slots)], a))
            if sh.jobs:
                out.append(sh)
        return out

    def _dataset(self, shards: list[_Shard]) -> Any:
        import ray.data

        tables = [_table([{**_job_row(j), "shard": i} for j in sh.jobs]) for i, sh in enumerate(shards)]
        per_call = max(1, self.backend.max_concurrency * self.backend.batch_size)
        ds = ray.data.from_arrow(tables)
        # Tasks, not actors: Ray keeps its worker processes, so the backends (cached per process) and the filter's
        # dictionaries outlive a round, where an actor pool is started anew for every round's dataset. Only the
        # filter takes a whole CPU: rendering is light and the model call waits on the network.
        ds = ds.map_batches(
            render_stage,
            fn_kwargs={"config": self.config, "template": self.template, "run_id": self.run.run_id},
            num_cpus=0.1,
            batch_format="pyarrow",
        )
        ds = ds.map_batches(call_stage, fn_kwargs={"spec": self.spec, "run_id": self.run.run_id}, num_cpus=0.1,
                            compute=ray.data.TaskPoolStrategy(size=self.workers), batch_size=per_call,
                            batch_format="pyarrow")  # fmt: skip
        return ds.map_batches(judge_stage, fn_kwargs={"judge": self.judge()}, batch_format="pyarrow")

    def _run_round(self, shards: list[_Shard], sched: Scheduler, bar: Progress) -> None:
        results: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(shards))}
        for batch in self._dataset(shards).iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                if row["fatal"]:
                    raise _fatal(row["fatal"])
                i = row["shard"]
                results[i].append(json.loads(row["record"]))
                if len(results[i]) == len(shards[i].jobs):
                    self._finish_shard(shards[i], results.pop(i), sched, bar)

    def _finish_shard(self, shard: _Shard, recs: list[dict[str, Any]], sched: Scheduler, bar: Progress) -> None:
        """A shard's results: its result file (the commit point), then its lines and provenance."""
        recs.sort(key=lambda r: (r["sample_id"], r["attempt"]))
        _write_parquet(shard.out, [{"id": r["id"], "record": json.dumps(r, ensure_ascii=False)} for r in recs])
        pause_point(PAUSE_SHARD_WRITTEN)
        group = {(s.id, a): g for g, s, a in shard.jobs}
        for rec in recs:
            self._commit(group[(rec["sample_id"], rec["attempt"])], rec, sched)
        self._flush_provenance()
        bar.update(self.totals, self.attempts_now)
        self._write_run_json()


def _fatal(text: str) -> MedsynError:
    """The error a worker's backend raised (its class and one line), raised again here."""
    import medsyn.errors

    doc = json.loads(text)
    kind = getattr(medsyn.errors, doc["type"], MedsynError)
    # The nearest class that takes a plain message (its exit code and kind stay), else MedsynError itself.
    mro = kind.__mro__ if isinstance(kind, type) and issubclass(kind, MedsynError) else (MedsynError,)
    same = next(k for k in mro if issubclass(k, MedsynError) and k.__init__ is MedsynError.__init__)
    return same(doc["message"])


def _connect(address: str | None) -> tuple[Any, bool]:
    """Ray, connected to ``address`` (or a local Ray) unless this process is connected already; True when this
    call connected it (the run then disconnects at its end)."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'medsyn[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    # MedSyn's progress bar and run line say how the run goes; Ray Data's bars and per-dataset lines would repeat it
    # once a round.
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    # A small round has fewer blocks than the model-call tasks allowed: nothing to fix, so nothing to say.
    warnings.filterwarnings("ignore", message="The maximum number of concurrent tasks", category=UserWarning)
    return ray, started


async def agenerate_ray(
    samples: Sequence[Sample],
    out_dir: str | Path,
    *,
    store: Store,
    backend: BackendSpec,
    config: GenerationConfig | None = None,
    graph_version: str | None = None,
    sampling: Mapping[str, Any] | None = None,
    progress: bool = False,
    command: Sequence[str] | None = None,
    address: str | None = None,
    workers: int = 2,
    shard_rows: int = SHARD_ROWS,
    built: Backend | None = None,
) -> RunSummary:
    """:func:`medsyn.generation.engine.agenerate` on Ray: the backend as a :class:`BackendSpec` (built in each
    worker), ``address`` the Ray cluster's (None: this process's Ray, else a local one), ``workers`` model-call
    tasks at once (each with the backend's concurrency of requests), ``shard_rows`` attempts per shard; ``built``:
    the spec's backend built here already (it gives the run's identity and provenance, and sends nothing)."""
    cfg = config or GenerationConfig()
    if cfg.max_cost is not None:
        raise InputError("--max-cost is not supported with --engine ray (the workers' spending is not metered)")
    if workers < 1 or shard_rows < 1:
        raise InputError(f"--ray-workers and --shard-rows must be >= 1, got {workers} and {shard_rows}")
    be = built or backend.build()
    try:
        engine = RayEngine(
            with_examples(samples, store, cfg, sampling), Path(out_dir), store=store, backend=be, config=cfg,
            graph_version=graph_version, sampling=sampling, command=command,
            spec=backend, address=address, workers=workers, shard_rows=shard_rows,
        )  # fmt: skip
        return await engine.run(progress=progress)
    finally:
        await be.aclose()


generate_ray = _blocking(agenerate_ray)
