"""A small, real HTTP server speaking the OpenAI chat completions API, for tests, benchmarks and demos.

It answers ``POST /v1/chat/completions`` (and ``POST /v1/completions``, the API of base models, with the same note
as ``choices[0].text``) with a deterministic clinical note built from the request (the note names
the symptoms it finds in the prompt), after a configurable latency, and can inject failures: ``429`` with
``Retry-After``, ``500``, slow replies, empty, truncated and refused replies. ``GET /stats`` returns request counts,
the peak number of requests in flight and arrival times; ``POST /config`` changes the behaviour at runtime.

Run it from the command line for a demo::

    python -m medsyn.testing.openai_server --port 8099 --latency 0.2
    medsyn generate --backend openai --base-url http://127.0.0.1:8099/v1 --n 10 --out /tmp/notes

or in-process from a test::

    with FakeOpenAIServer(latency=0.01) as srv:
        ...  # srv.base_url, srv.stats(), srv.configure(script=["429", "ok"])

Actions (``script`` entries are consumed by the first requests in order; ``rates`` draw one per request from a
seeded RNG; the default is ``ok``): ``ok``, ``429``, ``500``, ``slow``, ``empty``, ``refusal``, ``refusal_field``,
``truncated``, ``hang`` (never answers; exercises client timeouts), ``copy`` (writes back the example note of a
``paper_ru``-style prompt word for word, as a model that copies would), ``pii`` (the note plus a patient's name,
phone number and a date: :data:`PII_TAIL`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

ACTIONS = ("ok", "429", "500", "slow", "empty", "refusal", "refusal_field", "truncated", "hang", "copy", "pii")
PII_TAIL = " Пациентка Иванова Мария Петровна, тел. +7 (912) 345-67-89, осмотрена 18.02.2015."
"""What a ``pii`` reply appends to its note: a name, a phone number and a date, as a leaking model would."""


@dataclass
class ServerConfig:
    latency: float = 0.0
    """Seconds before every answer (errors included)."""
    slow_latency: float = 2.0
    """Extra seconds of a ``slow`` answer."""
    retry_after: float | None = 0.05
    """Retry-After seconds sent with a 429 (None: no header)."""
    script: list[str] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    api_key: str | None = None
    """When set, requests without ``Authorization: Bearer <api_key>`` get 401."""

    def validate(self) -> None:
        bad = [a for a in [*self.script, *self.rates] if a not in ACTIONS]
        if bad:
            raise ValueError(f"unknown action(s) {bad}; expected {ACTIONS}")


_MARKER = re.compile(r"(?:используя их всех|using all of them):\s*\n(.+?)\.?\s*(?:\n|$)", re.IGNORECASE)
_SYMPTOM_LINE = re.compile(r"^(.+;.+?)\.?$")
_FEWSHOT_LINE = re.compile(r"^Симптомы:\s*(.+?)\s*$", re.MULTILINE)
_COMPLAINS = re.compile(r"(?:жалуется на|complains of)\s+(.+?)\.(?:\s|$)", re.IGNORECASE | re.DOTALL)


def symptoms_in_prompt(text: str) -> list[str]:
    """The symptom list of a MedSyn prompt: the last line joined by '; ', or the phrase after 'жалуется на'.

    >>> symptoms_in_prompt("Анамнез:\\nболи в спине\\n\\nсимптомы:\\nкашель; лихорадка.\\n\\nУбедись.")
    ['кашель', 'лихорадка']
    """
    m = _MARKER.search(text)
    if m:
        return [s.strip() for s in m.group(1).split(";") if s.strip()]
    few = _FEWSHOT_LINE.findall(text)
    if few:  # a few-shot completion prompt: the last "Симптомы:" line is the new patient's
        return [s.strip() for s in few[-1].split(";") if s.strip()]
    found: list[str] = []
    for line in text.splitlines():
        m = _SYMPTOM_LINE.match(line.strip())
        if m:
            found = [s.strip() for s in m.group(1).split(";") if s.strip()]
    if found:
        return found
    m = _COMPLAINS.search(text)
    if m:
        return [s.strip() for s in m.group(1).split(",") if s.strip()]
    # A single symptom in the paper prompt: the line before the closing instruction.
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return [lines[-2].rstrip(".")] if len(lines) >= 2 else []


_EXAMPLE = re.compile(r"исходный анамнез пациента:\s*\n(.+?)\n\n", re.DOTALL)


def example_in_prompt(messages: list[dict[str, Any]]) -> str | None:
    """The example note a ``paper_ru`` prompt shows (between "исходный анамнез пациента:" and the next blank line)."""
    user = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
    m = _EXAMPLE.search(user)
    return m.group(1).strip() if m else None


def canned_note(messages: list[dict[str, Any]]) -> str:
    """A deterministic Russian note mentioning every symptom found in the last user message."""
    user = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
    h = int(hashlib.sha256(user.encode("utf-8")).hexdigest()[:8], 16)
    symptoms = symptoms_in_prompt(user)
    days = 2 + h % 12
    age = 20 + h % 60
    complaint = ", ".join(symptoms) if symptoms else "общую слабость"
    return (
        f"Пациент {age} лет жалуется на {complaint}. "
        f"Считает себя больным в течение {days} дней, когда впервые отметил указанные жалобы. "
        "Ранее за медицинской помощью не обращался, самостоятельно не лечился. "
        "Хронические заболевания отрицает, аллергологический анамнез не отягощен."
    )


class _State:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.script = list(config.script)
        self.requests = 0
        self.by_action: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[float] = []

    def next_action(self) -> str:
        if self.script:
            return self.script.pop(0)
        r = self.rng.random()
        acc = 0.0
        for action, p in self.config.rates.items():
            acc += p
            if r < acc:
                return action
        return "ok"

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_action": dict(self.by_action),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "arrivals": list(self.arrivals),
            "config": asdict(self.config),
        }


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> bytes:
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}.get(
        status, "Internal Server Error"
    )
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Content-Length: {len(payload)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> bytes:
    return _response(status, {"error": {"message": message, "type": kind, "param": None, "code": None}}, headers)


def _completion(request: dict[str, Any], text: str | None, finish: str, refusal: str | None = None) -> bytes:
    messages = request.get("messages") or []
    prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
    completion_tokens = max(1, len(text or "") // 4) if text else 0
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text, "refusal": refusal},
        "finish_reason": finish,
        "logprobs": None,
    }
    if request.get("text_api"):
        choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
    body = {
        "id": "chatcmpl-" + hashlib.sha256(json.dumps(messages, ensure_ascii=False).encode()).hexdigest()[:24],
        "object": "text_completion" if request.get("text_api") else "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake"),
        "system_fingerprint": "fp_medsyn_fake",
        "choices": [choice],
        "usage": {
            "prompt_tokens": max(1, prompt_chars // 4),
            "completion_tokens": completion_tokens,
            "total_tokens": max(1, prompt_chars // 4) + completion_tokens,
        },
    }
    return _response(200, body)


async def _answer(state: _State, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    path = path.split("?", 1)[0].rstrip("/")
    if method == "GET" and path == "/stats":
        return _response(200, state.stats())
    if method == "POST" and path == "/config":
        try:
            cfg = ServerConfig(**json.loads(body or b"{}"))
            cfg.validate()
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc), "invalid_request_error")
        state.config, state.script, state.rng = cfg, list(cfg.script), random.Random(cfg.seed)
        return _response(200, {"ok": True})
    if method == "GET" and path in {"/v1/models", "/models"}:
        return _response(200, {"object": "list", "data": [{"id": "gpt-4", "object": "model", "owned_by": "medsyn"}]})
    text_api = method == "POST" and path in {"/v1/completions", "/completions"}
    if not (text_api or (method == "POST" and path in {"/v1/chat/completions", "/chat/completions"})):
        return _error(404, f"no route {method} {path}", "invalid_request_error")
    cfg = state.config
    if cfg.api_key is not None and headers.get("authorization") != f"Bearer {cfg.api_key}":
        return _error(401, "Incorrect API key provided", "invalid_request_error")
    try:
        request = json.loads(body)
        if text_api:
            if not isinstance(request.get("prompt"), str):
                raise ValueError("prompt must be a string")
            request["messages"] = [{"role": "user", "content": request["prompt"]}]
            request["text_api"] = True
        elif not isinstance(request.get("messages"), list):
            raise ValueError("messages must be a list")
    except (ValueError, AttributeError) as exc:
        return _error(400, f"invalid request body: {exc}", "invalid_request_error")

    action = state.next_action()
    state.requests += 1
    state.by_action[action] = state.by_action.get(action, 0) + 1
    state.arrivals.append(time.monotonic())
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        delay = cfg.latency + (cfg.slow_latency if action == "slow" else 0.0)
        if action == "hang":
            delay = 3600.0
        if delay > 0:
            await asyncio.sleep(delay)
        if action == "429":
            hdr = {} if cfg.retry_after is None else {"Retry-After": f"{cfg.retry_after:g}"}
            return _error(429, "Rate limit reached for requests", "rate_limit_error", hdr)
        if action == "500":
            return _error(500, "The server had an error while processing your request.", "server_error")
        if action == "empty":
            return _completion(request, "", "stop")
        if action == "refusal":
            return _completion(request, "Извините, но я не могу помочь с этим запросом.", "stop")
        if action == "refusal_field":
            return _completion(request, None, "stop", refusal="I can't help with that.")
        text = canned_note(request["messages"])
        if action == "copy":
            text = example_in_prompt(request["messages"]) or text
        if action == "pii":
            text += PII_TAIL
        if action == "truncated":
            return _completion(request, text[: len(text) // 3], "length")
        return _completion(request, text, "stop")
    finally:
        state.in_flight -= 1


async def _serve_connection(state: _State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, path, _version = lines[0].split(" ", 2)
            except ValueError:
                return
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(length) if length else b""
            out = await _answer(state, method, path, headers, body)
            writer.write(out)
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                return
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
        return  # a cancelled handler (server shutdown) ends quietly
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def start_server(
    config: ServerConfig, *, host: str = "127.0.0.1", port: int = 0
) -> tuple[asyncio.Server, _State]:
    config.validate()
    state = _State(config)
    server = await asyncio.start_server(
        lambda r, w: _serve_connection(state, r, w), host, port, backlog=1024, reuse_address=True
    )
    return server, state


class FakeOpenAIServer:
    """The server on a background thread with its own event loop; a context manager that stops it on exit."""

    def __init__(self, config: ServerConfig | None = None, **options: Any) -> None:
        self.config = config or ServerConfig(**options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-openai", daemon=True)
        self._server: asyncio.Server | None = None
        self._state: _State | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(start_server(self.config), self._loop)
        self._server, self._state = fut.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _call(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def stats(self) -> dict[str, Any]:
        assert self._state is not None
        state = self._state
        return self._call(state.stats)

    def configure(self, **options: Any) -> None:
        """Replace the behaviour (fields of ServerConfig); counters are kept."""
        assert self._state is not None
        state = self._state
        cfg = ServerConfig(**{**asdict(state.config), **options})
        cfg.validate()

        def apply() -> None:
            state.config, state.script, state.rng = cfg, list(cfg.script), random.Random(cfg.seed)

        self._call(apply)

    def stop(self) -> None:
        if self._server is not None:
            server = self._server

            async def close() -> None:
                server.close()
                for task in asyncio.all_tasks():
                    if task is not asyncio.current_task():
                        task.cancel()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._server = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m medsyn.testing.openai_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8099, help="0 picks a free port")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    p.add_argument("--script", default="", help="comma-separated actions for the first requests, e.g. 429,500,ok")
    p.add_argument("--rate", action="append", default=[], metavar="ACTION=P", help="e.g. --rate 429=0.1")
    p.add_argument("--retry-after", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--api-key", default=None)
    a = p.parse_args(argv)
    rates = {}
    for item in a.rate:
        k, _, v = item.partition("=")
        rates[k] = float(v)
    cfg = ServerConfig(
        latency=a.latency,
        retry_after=a.retry_after,
        script=[s for s in a.script.split(",") if s],
        rates=rates,
        seed=a.seed,
        api_key=a.api_key,
    )

    async def run() -> None:
        server, _ = await start_server(cfg, host=a.host, port=a.port)
        port = server.sockets[0].getsockname()[1]
        print(f"listening on http://{a.host}:{port}/v1", flush=True)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
