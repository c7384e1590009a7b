"""Start and stop real SPARQL servers for tests and benchmarks: the Oxigraph server binary and ``medsyn serve``.

Each runs as a child process on a free 127.0.0.1 port, is ready when its HTTP port answers, and is terminated (then
killed if it lingers) when the context exits, so no test leaves a server behind.

    with oxigraph_server(tmp_path / "ox") as ox:
        RemoteStore(ox.query_url).query("ASK {}")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from medsyn.errors import StoreError


@dataclass(frozen=True)
class RunningServer:
    """A started server: its process, base URL and the SPARQL routes clients need."""

    process: subprocess.Popen[bytes]
    base_url: str
    query_url: str
    update_url: str
    store_url: str
    log_path: Path
    token: str | None = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def oxigraph_binary() -> str:
    """The ``oxigraph`` server binary of the ``oxigraph`` package: beside this Python, else on PATH."""
    beside = Path(sys.executable).parent / "oxigraph"
    if beside.is_file():
        return str(beside)
    found = shutil.which("oxigraph")
    if not found:
        raise StoreError("the oxigraph server binary is missing; install the `oxigraph` package")
    return found


def wait_ready(
    process: subprocess.Popen[bytes], url: str, log_path: Path, *, timeout_s: float = 30.0, ok_only: bool = False
) -> None:
    """Poll ``url`` until it answers (any HTTP status; only 2xx with ``ok_only``); fail early when the process
    exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace").strip().splitlines()
            raise StoreError(f"server exited with {process.returncode}: {log[-1] if log else 'no output'}")
        try:
            if httpx.get(url, timeout=1.0).is_success or not ok_only:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    stop(process)
    raise StoreError(f"server at {url} not ready after {timeout_s:g} s")


def stop(process: subprocess.Popen[bytes], *, timeout_s: float = 15.0) -> None:
    """SIGTERM (a clean shutdown that flushes the store), then SIGKILL if the process does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)


@contextlib.contextmanager
def _started(
    args: Sequence[str],
    *,
    port: int,
    log_path: Path,
    ready_path: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 30.0,
    ok_only: bool = False,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:  # a file, not a pipe: a chatty server can never block on a full pipe
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, base + ready_path, log_path, timeout_s=timeout_s, ok_only=ok_only)
        yield process, base
    finally:
        stop(process)


@contextlib.contextmanager
def oxigraph_server(
    location: Path | None,
    *,
    port: int | None = None,
    union_default_graph: bool = False,
    timeout_s: float | None = None,
    log_path: Path | None = None,
) -> Iterator[RunningServer]:
    """``oxigraph serve --location DIR --bind 127.0.0.1:PORT`` (in memory when ``location`` is None)."""
    port = port or free_port()
    args = [oxigraph_binary(), "serve", "--bind", f"127.0.0.1:{port}"]
    if location is not None:
        args += ["--location", str(location)]
    if union_default_graph:
        args.append("--union-default-graph")
    if timeout_s is not None:
        args += ["--timeout-s", str(int(timeout_s))]
    log_path = log_path or Path(location or Path.cwd()).with_suffix(".oxigraph.log")
    with _started(args, port=port, log_path=log_path, ready_path="/") as (process, base):
        yield RunningServer(process, base, base + "/query", base + "/update", base + "/store", log_path)


@contextlib.contextmanager
def medsyn_server(
    store: Path,
    *,
    port: int | None = None,
    token: str | None = None,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
) -> Iterator[RunningServer]:
    """``medsyn serve --store DIR`` as a child process (the same code path users run)."""
    port = port or free_port()
    args = [sys.executable, "-m", "medsyn", "serve", "--store", str(store), "--port", str(port), *extra_args]
    env = dict(os.environ)
    env.pop("MEDSYN_SERVE_TOKEN", None)
    if token is not None:
        env["MEDSYN_SERVE_TOKEN"] = token  # through the environment: a token on argv shows up in `ps`
    log_path = log_path or store.with_suffix(".serve.log")
    with _started(args, port=port, log_path=log_path, ready_path="/health", env=env) as (process, base):
        yield RunningServer(process, base, base + "/sparql", base + "/update", base + "/store", log_path, token)


@dataclass(frozen=True)
class RunningOpenAIServer:
    """A started test OpenAI-compatible server process (:mod:`medsyn.testing.openai_server`)."""

    process: subprocess.Popen[bytes]
    base_url: str
    """The API root clients take as ``--base-url`` (``http://127.0.0.1:PORT/v1``)."""
    log_path: Path

    def stats(self) -> dict[str, Any]:
        """The server's ``GET /stats`` (requests, by action, arrivals)."""
        return dict(httpx.get(self.base_url.removesuffix("/v1") + "/stats", timeout=5.0).json())


@contextlib.contextmanager
def openai_server(
    log_path: Path, *, port: int | None = None, latency: float = 0.0, extra_args: Sequence[str] = ()
) -> Iterator[RunningOpenAIServer]:
    """``python -m medsyn.testing.openai_server`` as a child process: a real server a test can kill -9."""
    port = port or free_port()
    args = [sys.executable, "-m", "medsyn.testing.openai_server", "--port", str(port), "--latency", str(latency)]
    with _started([*args, *extra_args], port=port, log_path=log_path, ready_path="/stats") as (process, base):
        yield RunningOpenAIServer(process, base + "/v1", log_path)


@contextlib.contextmanager
def llama_server(
    log_path: Path, *, model: str = "gemma3", port: int | None = None, extra_args: Sequence[str] = ()
) -> Iterator[RunningOpenAIServer]:
    """llama.cpp's OpenAI-compatible server (:mod:`medsyn.testing.llama_server`) as a child process; ready when
    ``/health`` says 200 (the model is loaded)."""
    port = port or free_port()
    args = [sys.executable, "-m", "medsyn.testing.llama_server", "--model", model, "--port", str(port), *extra_args]
    with _started(args, port=port, log_path=log_path, ready_path="/health", timeout_s=120.0, ok_only=True) as (
        process,
        base,
    ):
        yield RunningOpenAIServer(process, base + "/v1", log_path)


_VIRTUOSO_INI = """\
; Written by medsyn.testing.servers.virtuoso_server: one Virtuoso instance in its own folder, 127.0.0.1 only.
[Database]
DatabaseFile = {dir}/virtuoso.db
ErrorLogFile = {dir}/virtuoso.log
LockFile = {dir}/virtuoso.lck
TransactionFile = {dir}/virtuoso.trx
xa_persistent_file = {dir}/virtuoso.pxa
FileExtend = 200
Striping = 0
TempStorage = TempDatabase

[TempDatabase]
DatabaseFile = {dir}/virtuoso-temp.db
TransactionFile = {dir}/virtuoso-temp.trx
Striping = 0

[Parameters]
ServerPort = 127.0.0.1:{sql_port}
DisableUnixSocket = 1
CheckpointInterval = 60
CaseMode = 2
DirsAllowed = .
NumberOfBuffers = 10000
MaxDirtyBuffers = 6000
ThreadsPerQuery = 2
MaxQueryMem = 1G

[HTTPServer]
ServerPort = 127.0.0.1:{port}
ServerRoot = {dir}
ServerThreads = 10
Charset = UTF-8

[SPARQL]
; Virtuoso cuts every result at ResultSetMaxRows (10,000 in Debian's virtuoso.ini) without saying so.
ResultSetMaxRows = {max_rows}
MaxQueryExecutionTime = 600
MaxQueryCostEstimationTime = 600
"""

# The anonymous /sparql user may update, and may write every graph (Virtuoso 7.2 checks both).
_VIRTUOSO_GRANTS = "GRANT SPARQL_UPDATE TO \"SPARQL\"; DB.DBA.RDF_DEFAULT_USER_PERMS_SET ('nobody', 7);"


def _virtuoso_tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise StoreError(f"{name} is missing; install Virtuoso (apt-get install virtuoso-opensource)")
    return found


@contextlib.contextmanager
def virtuoso_server(
    folder: Path, *, port: int | None = None, max_rows: int = 10_000_000, log_path: Path | None = None
) -> Iterator[RunningServer]:
    """Virtuoso Open Source (``virtuoso-t``) with a fresh database in ``folder`` (its own virtuoso.ini), its SPARQL
    endpoint on a free 127.0.0.1 port open to updates without a password: ``/sparql`` answers queries and updates,
    ``/sparql-graph-crud`` is its Graph Store Protocol."""
    port = port or free_port()
    sql_port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    ini = folder / "virtuoso.ini"
    ini.write_text(_VIRTUOSO_INI.format(dir=folder.resolve(), port=port, sql_port=sql_port, max_rows=max_rows))
    args = [_virtuoso_tool("virtuoso-t"), "+foreground", "+configfile", str(ini)]
    log_path = log_path or folder.with_suffix(".virtuoso.log")
    ready = "/sparql?query=ASK%7B%7D"
    with _started(args, port=port, log_path=log_path, ready_path=ready, timeout_s=120.0, ok_only=True) as (
        process,
        base,
    ):
        isql = [_virtuoso_tool("isql-vt"), f"127.0.0.1:{sql_port}", "dba", "dba", f"exec={_VIRTUOSO_GRANTS}"]
        done = subprocess.run(isql, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or "Error" in done.stdout + done.stderr:
            raise StoreError(f"granting SPARQL updates on Virtuoso failed: {(done.stderr or done.stdout).strip()}")
        url = base + "/sparql"
        yield RunningServer(process, base, url, url, base + "/sparql-graph-crud", log_path)
