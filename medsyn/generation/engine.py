"""The generation engine: samples -> prompts -> backend -> reply parsing -> quality filter -> JSONL + provenance.

Output directory layout::

    DIR/run.json        run id, parameters, graph version, totals, cost (atomic rewrite, periodically and at the end)
    DIR/samples.jsonl   the samples of the run (written once, atomically, at the first start)
    DIR/notes.jsonl     accepted notes, one JSON object per line, appended and flushed per note
    DIR/failures.jsonl  rejected notes and failed attempts with their reason, same fields plus ``status``

Resume: the same call on the same directory reads both JSONL files (a torn last line left by ``kill -9`` is cut off),
skips the attempts already recorded, re-adds provenance missing from the store (quads are a function of the
records, so this is idempotent) and generates only what is missing. A line is the commit point of an attempt: it is
written with one ``write`` call before the attempt's provenance.

Scheduling: every sample is a group wanting one accepted note within ``max_attempts`` attempts; with
``target_per_code=K`` every category is a group wanting K accepted notes, cycling through its samples, within
``K * max_attempts`` attempts. A group never has more attempts in flight than it still needs, so a run never
writes more notes than requested. Transport errors count as attempts within a process, but a resumed run gives
them another chance; permanent errors (``Completion.permanent``: a prompt too long, an HTTP 4xx) always count.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shlex
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medsyn.atomic import atomic_write_text, fsync_file, writable_folder
from medsyn.errors import InputError, ParameterError, StoreError
from medsyn.generation.backends import Backend, ChatRequest, Completion
from medsyn.generation.filter import FilterConfig, decide, score_note
from medsyn.generation.prompts import DEFAULT_TEMPLATE, PromptTemplate, load_template, messages_hash, sample_examples
from medsyn.generation.provenance import (
    RunInfo,
    add_notes,
    content_hash,
    finish_run,
    note_id,
    now_iso,
    recorded_note_ids,
    start_run,
)
from medsyn.generation.replies import parse_reply
from medsyn.jsonl import read_jsonl
from medsyn.kg.store import Store
from medsyn.locks import acquire, release
from medsyn.sampling.samples import Sample, read_samples

NOTES_FILE = "notes.jsonl"
FAILURES_FILE = "failures.jsonl"
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
LOCK_FILE = ".lock"
"""The output folder's OS lock: one generating process per folder (released by the kernel on kill -9)."""
LOST = "lost"
"""Status of a failures.jsonl line for a note the store recorded but the folder lost (its id is never reused)."""
NOTE_STATUSES = ("accepted", "rejected")
"""Record statuses that carry a scored note (and so provenance); other failures.jsonl lines are failed attempts."""
_RUN_JSON_EVERY_S = 5.0
_PROV_BATCH = 256
_PROV_EVERY_S = 0.5


@dataclass(frozen=True)
class GenerationConfig:
    template: str = DEFAULT_TEMPLATE
    """A packaged template name or a template JSON file."""
    seed: int = 0
    temperature: float = 1.0
    max_tokens: int = 1024
    max_attempts: int = 3
    """Attempts per sample (per code: ``target_per_code * max_attempts``) before giving up."""
    target_per_code: int | None = None
    max_cost: float | None = None
    """Stop dispatching once the estimated cost (USD) would exceed this; may be raised on resume."""
    filter: FilterConfig = field(default_factory=FilterConfig)
    shots: int | None = None
    """Example notes per prompt of a few-shot template, instead of the template's own ``shots`` (None: keep)."""
    stop: tuple[str, ...] | None = None
    """Stop sequences instead of the template's (None: the template's, else the backend's default)."""

    def load_template(self) -> PromptTemplate:
        """The template with this config's overrides (they change its content hash, so provenance sees them)."""
        t = load_template(self.template)
        if self.shots is not None:
            if not t.shots:
                raise ParameterError(f"{{shots}} applies to a few-shot template; {t.name!r} is not one")
            t = dataclasses.replace(t, shots=self.shots)
        if self.stop is not None:
            t = dataclasses.replace(t, stop=tuple(self.stop))
        return t

    def __post_init__(self) -> None:
        if self.shots is not None and not 1 <= self.shots <= 32:
            raise ParameterError(f"{{shots}} must be from 1 to 32, got {self.shots}")
        if self.max_attempts < 1:
            raise ParameterError(f"{{max_attempts}} must be >= 1, got {self.max_attempts}")
        if self.target_per_code is not None and self.target_per_code < 1:
            raise ParameterError(f"{{target_per_code}} must be >= 1, got {self.target_per_code}")
        if self.max_cost is not None and self.max_cost <= 0:
            raise ParameterError(f"{{max_cost}} must be > 0, got {self.max_cost}")
        if self.max_tokens < 1:
            raise ParameterError(f"{{max_tokens}} must be >= 1, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ParameterError(f"{{temperature}} must be in [0, 2], got {self.temperature}")


@dataclass
class RunSummary:
    run_id: str
    out_dir: Path
    status: str
    """``done`` (every group reached its quota), ``incomplete`` (some gave up), ``budget`` (max cost reached)."""
    requested: int
    accepted: int
    rejected: int
    failed: int
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    elapsed_s: float
    generated_now: int
    """Attempts made by this call (the rest were read back from an earlier, interrupted call)."""
    lost: int = 0
    """Notes the store recorded that the folder no longer had (found on resume; generated again under new ids)."""

    @property
    def produced_nothing(self) -> bool:
        """Notes were asked for and none was accepted: the CLI reports this as a finding (exit 1), not success."""
        return self.requested > 0 and self.accepted == 0

    @property
    def notes_per_s(self) -> float:
        return self.generated_now / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out_dir"] = str(self.out_dir)
        d["notes_per_s"] = round(self.notes_per_s, 3)
        return d


# ------------------------------------------------------------------------------------------------ JSONL files
class JsonlAppender:
    """Append-only JSONL: each record is one ``write`` syscall of a whole line (unbuffered), so a killed process
    leaves at most one torn last line, which :func:`read_records` cuts off. :meth:`sync` makes the lines written so
    far survive a power loss; the engine calls it before it writes their provenance."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fh = path.open("ab", buffering=0)
        except OSError as exc:
            raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from None
        self._dirty = False

    def write(self, record: Mapping[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            n = self._fh.write(data)
            while n is not None and n < len(data):  # a short write (disk full): finish it or fail loudly
                data = data[n:]
                n = self._fh.write(data)
        except OSError as exc:
            raise StoreError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._dirty = True

    def sync(self) -> None:
        if self._dirty:
            try:
                os.fsync(self._fh.fileno())
            except OSError as exc:
                raise StoreError(f"cannot write {self.path}: {exc.strerror or exc}") from None
            self._dirty = False

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()


def failure_reasons(out_dir: str | Path, top: int = 3) -> str:
    """The most frequent reasons in a run's failures.jsonl, e.g. ``"5 symptom recall, 2 too short"``.

    Reasons are grouped by their words, numbers and parentheses left out, so "symptom recall 0.20 < 0.5" and
    "symptom recall 0.00 < 0.5" count as one reason.
    """
    counts: dict[str, int] = {}
    for rec in read_records(Path(out_dir) / FAILURES_FILE):
        words = re.sub(r"\s+", " ", re.sub(r"\(.*?\)|[0-9.]+(?:\s*[<>]\s*[0-9.]+)?", " ", str(rec.get("reason", ""))))
        key = words.strip(" :;,") or str(rec.get("status", "failed"))
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return ", ".join(f"{n} {k}" for k, n in ranked)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL output file (through :func:`medsyn.jsonl.read_jsonl`); a torn last line (no newline) is
    truncated away on disk first, since a killed process leaves at most that one."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)
    out = []
    try:
        for n, rec in read_jsonl(path):
            if "id" not in rec or "sample_id" not in rec:
                raise InputError("not a note record (no id or sample_id)", path=path, line=n)
            out.append(rec)
    except InputError as exc:
        raise InputError(f"corrupt output: {exc}; move the file away to start over") from None
    return out


# ------------------------------------------------------------------------------------------------ scheduling
@dataclass(eq=False)
class _Group:
    key: str
    slots: list[Sample]
    quota: int
    cap: int
    accepted: int = 0
    counted: int = 0
    in_flight: int = 0
    used: set[int] = field(default_factory=set)
    next_attempt: int = 0
    queued: bool = False

    def can_start(self) -> bool:
        return self.accepted + self.in_flight < self.quota and self.counted + self.in_flight < self.cap

    def finished(self) -> bool:
        return self.in_flight == 0 and not self.can_start()

    def start(self) -> tuple[Sample, int]:
        while self.next_attempt in self.used:
            self.next_attempt += 1
        a = self.next_attempt
        self.used.add(a)
        self.in_flight += 1
        return self.slots[a % len(self.slots)], a


class _Scheduler:
    def __init__(self, groups: list[_Group]) -> None:
        self.groups = groups
        self.ready: deque[_Group] = deque()
        for g in groups:
            self.requeue(g)

    def requeue(self, g: _Group, *, front: bool = False) -> None:
        if not g.queued and g.can_start():
            g.queued = True
            (self.ready.appendleft if front else self.ready.append)(g)

    def take(self, k: int) -> list[tuple[_Group, Sample, int]]:
        out = []
        while self.ready and len(out) < k:
            g = self.ready[0]
            if not g.can_start():
                self.ready.popleft()
                g.queued = False
                continue
            s, a = g.start()
            out.append((g, s, a))
        return out


def _make_groups(samples: Sequence[Sample], config: GenerationConfig) -> list[_Group]:
    if config.target_per_code is None:
        return [_Group(s.id, [s], 1, config.max_attempts) for s in samples]
    by_code: dict[str, list[Sample]] = {}
    for s in samples:
        by_code.setdefault(s.category, []).append(s)
    k = config.target_per_code
    return [_Group(code, ss, k, k * config.max_attempts) for code, ss in by_code.items()]


# ------------------------------------------------------------------------------------------------ the run
def _sample_line(s: Sample) -> str:
    """``Sample.to_json()`` without ``dataclasses.asdict``'s deep copies (same text: the fields are JSON values)."""
    return json.dumps(vars(s), ensure_ascii=False, sort_keys=True)


def _samples_hash(lines: Sequence[str]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


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


class _Totals:
    def __init__(self) -> None:
        self.accepted = self.rejected = self.failed = self.attempts = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.cost_usd = 0.0
        self.by_server: dict[str, int] = {}
        """Attempts answered by each server of an OpenAI-compatible pool (from the records, so resume keeps them)."""

    def add(self, rec: Mapping[str, Any]) -> None:
        self.attempts += 1
        if rec.get("accepted"):
            self.accepted += 1
        elif rec.get("status") == "rejected":
            self.rejected += 1
        else:
            self.failed += 1
        usage = rec.get("usage") or {}
        self.prompt_tokens += int(usage.get("prompt_tokens", 0))
        self.completion_tokens += int(usage.get("completion_tokens", 0))
        self.cost_usd += float(rec.get("cost_usd", 0.0))
        if rec.get("server"):
            self.by_server[rec["server"]] = self.by_server.get(rec["server"], 0) + 1

    def to_dict(self) -> dict[str, Any]:
        by_server = {"by_server": dict(sorted(self.by_server.items()))} if self.by_server else {}
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "attempts": self.attempts,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
            **by_server,
        }


class _Progress:
    """A rich progress bar with notes/s, accepted rate and cost; a no-op when disabled."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self._p: Any = None
        self._t0 = time.monotonic()
        self._done0 = done
        if not enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._p = Progress(
            TextColumn("[bold]generate"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} notes"),
            TextColumn("{task.fields[rate]:.1f} notes/s"),
            TextColumn("accepted {task.fields[acc]:.0%}"),
            TextColumn("${task.fields[cost]:.4f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._p.add_task("generate", total=total, completed=done, rate=0.0, acc=0.0, cost=0.0)
        self._p.start()

    def update(self, totals: _Totals, attempts_now: int) -> None:
        if self._p is None:
            return
        dt = time.monotonic() - self._t0
        acc = totals.accepted / totals.attempts if totals.attempts else 0.0
        self._p.update(
            self._task,
            completed=totals.accepted,
            rate=attempts_now / dt if dt > 0 else 0.0,
            acc=acc,
            cost=totals.cost_usd,
        )

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


def generate(
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
    dataset card can say how to reproduce the set."""
    return asyncio.run(
        agenerate(
            samples,
            out_dir,
            store=store,
            backend=backend,
            config=config,
            graph_version=graph_version,
            sampling=sampling,
            progress=progress,
            command=command,
        )
    )


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
    """The async form of :func:`generate` (call it from a running event loop)."""
    cfg = config or GenerationConfig()
    template = cfg.load_template()
    if template.shots:
        from medsyn.sampling.draw import add_examples

        samples = add_examples(store, samples, template.shots, seed=cfg.seed)
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


def load_run_samples(out_dir: str | Path, sampling: Mapping[str, Any]) -> list[Sample] | None:
    """The samples of an earlier run in ``out_dir`` drawn with the same ``sampling`` parameters, or None.

    Lets a resumed command skip sampling; with other sampling parameters the caller samples again and the engine
    then refuses the directory.
    """
    d = Path(out_dir)
    try:
        prev = json.loads((d / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(prev, dict) or prev.get("identity", {}).get("sampling") != dict(sampling):
        return None
    if not (d / SAMPLES_FILE).is_file():
        return None
    return read_samples(d / SAMPLES_FILE)


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
        self._sample_lines = [_sample_line(s) for s in self.samples]
        self.out = out_dir
        self.store = store
        self.backend = backend
        self.config = config
        self.template = config.load_template()
        _check_samples(self.samples, self.template)
        self.graph_version = graph_version or _graph_version(store, self.samples)
        self.totals = _Totals()
        self.attempts_now = 0
        self.status = "running"
        self._prov: list[dict[str, Any]] = []
        self._prov_t = time.monotonic()
        self._appenders: tuple[JsonlAppender, ...] = ()
        self.lost = 0

    # ---------------------------------------------------------------- run identity and run.json
    def _identity(self) -> dict[str, Any]:
        c = self.config
        return {
            "samples_sha256": _samples_hash(self._sample_lines),
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
            "filter": asdict(c.filter),
            "sampling": self.sampling,
        }

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
        stats = getattr(self.backend, "server_stats", None)
        if stats is not None:  # this process's transport counts per server (retries and failures included)
            doc["servers"] = stats()
        atomic_write_text(self.out / RUN_FILE, json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        self._last_run_json = time.monotonic()

    # ---------------------------------------------------------------- resume
    def _resume(self) -> None:
        notes = read_records(self.out / NOTES_FILE)
        failures = read_records(self.out / FAILURES_FILE)
        by_sample: dict[str, _Group] = {}
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
        missing = [r for r in [*notes, *failures] if _has_note(r) and r["id"] not in have]
        if missing:
            for name in (NOTES_FILE, FAILURES_FILE):
                fsync_file(self.out / name)
            add_notes(self.store, self.run, missing)

    def _record_lost(
        self, have: Mapping[str, tuple[str, int]], in_folder: set[str], by_sample: dict[str, _Group]
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

    # ---------------------------------------------------------------- one attempt
    def _record(
        self, g: _Group, sample: Sample, attempt: int, nid: str, req: ChatRequest, started: str, comp: Completion
    ) -> dict[str, Any]:
        ended = now_iso()
        rec: dict[str, Any] = {
            "id": nid,
            "run_id": self.run.run_id,
            "code": sample.category,
            "subcode": sample.code,
            "model": self.backend.model,
            "backend": self.backend.name,
            # The real example notes stand as their ids (prompts.example_marker): a shared notes.jsonl must not
            # carry a hospital's notes. prompt_sha256 is the hash of what was sent, for re-rendering from the graph.
            "prompt": self._redacted_prompt(sample),
            "prompt_sha256": messages_hash(req.messages),
            "symptoms": sample.symptoms,
            "symptom_iris": sample.symptom_iris,
            "example_id": sample.example_id,
            "example_ids": [i for i, _ in sample_examples(sample)[: self.template.shots or 1] if i],
            "response": None,
            "scores": None,
            "accepted": False,
            "status": "error",
            "reason": "",
            "sample_id": sample.id,
            "attempt": attempt,
            "seed": req.seed,
            "template": self.template.name,
            "template_hash": self.template.content_hash,
            "kg_version": sample.kg_version or self.graph_version,
            "finish_reason": comp.finish_reason,
            "usage": {"prompt_tokens": comp.prompt_tokens, "completion_tokens": comp.completion_tokens},
            "cost_usd": comp.cost_usd,
            "retries": comp.retries,
            "started": started,
            "ended": ended,
        }
        if comp.model and comp.model != self.backend.model:
            rec["model_reported"] = comp.model
        if comp.extra.get("server"):
            rec["server"] = comp.extra["server"]
        if comp.error is not None:
            rec["reason"] = comp.error
            if comp.permanent:
                rec["permanent"] = True
            return rec
        reply = parse_reply(comp.text, finish_reason=comp.finish_reason, refusal=comp.refusal)
        rec["response"] = reply.text or None
        if not reply.ok:
            rec["status"], rec["reason"] = reply.status, reply.reason
            return rec
        shown = [t for _, t in sample_examples(sample)[: self.template.shots or 1]]
        scores = score_note(reply.text, sample.symptoms, shown)
        ok, why = decide(scores, self.config.filter)
        rec.update(
            scores=scores.to_dict(),
            accepted=ok,
            status="accepted" if ok else "rejected",
            reason=why,
            content_hash=content_hash(reply.text),
        )
        return rec

    def _redacted_prompt(self, sample: Sample) -> list[dict[str, str]]:
        t = self.template
        if t.mode == "completion":
            return [{"role": "user", "content": t.render_text(sample, redact=True)}]
        return t.render(sample, redact=True)

    async def _attempt_batch(self, jobs: list[tuple[_Group, Sample, int]]) -> list[tuple[Any, ...]]:
        prepared = []
        for g, s, a in jobs:
            nid = note_id(self.run.run_id, s.id, a)
            t = self.template
            text = t.render_text(s) if t.mode == "completion" else None
            req = ChatRequest(
                key=nid,
                messages=[{"role": "user", "content": text}] if text is not None else t.render(s),
                # From the seed, the sample and the attempt, not the note id: that holds the run id (creation
                # time), and two fresh runs of one command must write the same notes.
                seed=_request_seed(self.config.seed, f"{s.id}\x1f{a}"),
                temperature=self.config.temperature,
                max_tokens=self.config.max_tokens,
                prompt=text,
                stop=t.stop if t.stop or self.config.stop is not None else None,
            )
            prepared.append((g, s, a, nid, req))
        started = now_iso()
        comps = await self.backend.complete([p[4] for p in prepared])
        return [(*p, started, c) for p, c in zip(prepared, comps, strict=True)]

    # ---------------------------------------------------------------- main loop
    async def run(self, *, progress: bool) -> RunSummary:
        _prepare_out(self.out)
        lock = self.out / LOCK_FILE
        acquire(lock, f"output folder {self.out}")
        try:
            return await self._run(progress=progress)
        finally:
            release(lock)

    async def _run(self, *, progress: bool) -> RunSummary:
        t0 = time.monotonic()
        self.groups = _make_groups(self.samples, self.config)
        self._open_run()
        start_run(self.store, self.run)
        self._resume()
        sched = _Scheduler(self.groups)
        notes_out = JsonlAppender(self.out / NOTES_FILE)
        fail_out = JsonlAppender(self.out / FAILURES_FILE)
        self._appenders = (notes_out, fail_out)
        bar = _Progress(progress, sum(g.quota for g in self.groups), self.totals.accepted)
        in_flight: set[asyncio.Task[list[tuple[Any, ...]]]] = set()
        budget_hit = False
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
                    break
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                self._handle(done, sched, notes_out, fail_out)
                bar.update(self.totals, self.attempts_now)
                if time.monotonic() - self._last_run_json > _RUN_JSON_EVERY_S:
                    self._write_run_json()
            if budget_hit:
                self.status = "budget"
            elif all(g.accepted >= g.quota for g in self.groups):
                self.status = "done"
            else:
                self.status = "incomplete"
        except BaseException:
            self.status = "interrupted"
            for t in in_flight:
                t.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*in_flight, return_exceptions=True)
            raise
        finally:
            bar.close()
            try:
                self._flush_provenance()
            finally:
                notes_out.close()
                fail_out.close()
            with contextlib.suppress(Exception):
                finish_run(self.store, self.run, ended=now_iso(), totals=self.totals.to_dict())
            self._write_run_json()
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
        sched: _Scheduler,
        notes_out: JsonlAppender,
        fail_out: JsonlAppender,
    ) -> None:
        with_notes = []
        for task in done:
            for g, s, a, nid, req, started, comp in task.result():
                rec = self._record(g, s, a, nid, req, started, comp)
                (notes_out if rec["accepted"] else fail_out).write(rec)
                self.totals.add(rec)
                self.attempts_now += 1
                g.in_flight -= 1
                g.counted += 1
                if rec["accepted"]:
                    g.accepted += 1
                if _has_note(rec):
                    with_notes.append(rec)
                sched.requeue(g, front=True)
        # Provenance is written in batches (one transaction each): it is rebuilt from the JSONL on resume, so a
        # crash loses nothing, and large transactions cost far less per note.
        self._prov.extend(with_notes)
        if len(self._prov) >= _PROV_BATCH or time.monotonic() - self._prov_t > _PROV_EVERY_S:
            self._flush_provenance()

    def _flush_provenance(self) -> None:
        if self._prov:
            for out in self._appenders:  # a note's line is on disk before the store records the note
                out.sync()
            add_notes(self.store, self.run, self._prov)
            self._prov = []
        self._prov_t = time.monotonic()


def _prepare_out(out: Path) -> None:
    """Refuse, in one line, an output folder that is a file or cannot be created or written."""
    if out.exists() and not out.is_dir():
        raise InputError("--out must be a folder, and this is a file", path=out)
    writable_folder(out, "output folder")


def _has_note(rec: Mapping[str, Any]) -> bool:
    """A record with a scored note text (accepted or rejected by the filter) gets provenance."""
    return rec.get("status") in NOTE_STATUSES and bool(rec.get("content_hash"))
