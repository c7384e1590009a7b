"""The ``openai`` backend: GPT-4 by default, or any OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama).

Built on the official ``openai`` SDK's HTTP client and headers (see below), without the SDK's retries: the retry
policy lives here so that it is visible, testable and shared across requests:

* 429, 5xx, timeouts and connection errors are retried up to ``max_retries`` times with exponential backoff and
  full jitter (``uniform(0, min(cap, base * 2**n))``, seeded);
* a ``Retry-After`` (or ``retry-after-ms``) header wins over the backoff and pauses *all* requests;
* ``rpm`` spaces request starts (client-side requests-per-minute limit);
* 401/403/404 stop the run with one clear line; other 4xx fail the one request.

A pool of servers (``base_url`` given as several URLs: vLLM, llama.cpp server or TGI replicas): each request goes
to the least-loaded server that is up (fewest requests in flight, then fewest sent); a server that fails a request
(connection error, timeout, 5xx) is taken out for ``server_cooldown`` seconds (doubling while it keeps failing) and
the request is retried at once on another one; a taken-out server gets requests again after its cooldown. A 429
pauses only the server that sent it. Per-server counts: :meth:`OpenAIBackend.server_stats`, and every completion
names its server in ``Completion.extra["server"]``.

A request with a completion prompt (``ChatRequest.prompt``, from a ``"mode": "completion"`` template) goes to
``/completions`` (the API base models are served with: vLLM, llama.cpp server, TGI); chat messages go to
``/chat/completions``.

Requests are plain JSON POSTs on the SDK's own HTTP client (``openai.DefaultAsyncHttpxClient``: httpx, or httpx2
in openai 3.x) with the headers an ``openai.AsyncOpenAI`` client sends (auth, organisation and project, user agent),
and the reply JSON is read directly. Neither ``chat.completions.create`` and its pydantic models (~3 ms of CPU a
request) nor the SDK's low-level ``post`` (~0.5 ms: request options, header merging and validation, response
wrapping on every request) is on the path: at 64 requests in flight on a small machine the client's CPU per request
caps throughput (docs/scale.md). Status codes, timeouts and transport errors are read from the HTTP library's own
response and exceptions. Token usage comes from the reply's ``usage``; cost from
:mod:`medsyn.generation.backends.pricing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import os
import random
import time
from collections.abc import Sequence
from typing import Any

from medsyn.errors import BackendError, InputError, ParameterError
from medsyn.generation.backends import ChatRequest, Completion
from medsyn.generation.backends.pricing import Price, cost_usd, parse_price, price_for
from medsyn.generation.backends.ratelimit import RateLimiter

DEFAULT_MODEL = "gpt-4"
LANE_WIDTH = 8


def _http_library() -> Any:
    """The HTTP library the installed ``openai`` is built on (httpx, or httpx2 in 3.x): its client class's base."""
    import importlib

    import openai

    base = next(c for c in openai.DefaultAsyncHttpxClient.__mro__[1:] if c.__name__ == "AsyncClient")
    return importlib.import_module(base.__module__.split(".")[0])


def _sdk_headers(api_key: str, base_url: str | None, http: Any) -> tuple[str, dict[str, str]]:
    """(base URL, headers) an ``openai.AsyncOpenAI`` client would send with: its defaults (``$OPENAI_BASE_URL``,
    ``$OPENAI_ORG_ID``, ``$OPENAI_PROJECT_ID``, user agent) and auth, read once rather than merged on every request.
    ``http``: an HTTP client of ours, so that the SDK client opens none of its own."""
    import openai

    sdk = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, http_client=http)
    headers = {k: v for k, v in {**sdk.default_headers, **sdk.auth_headers}.items() if isinstance(v, str)}
    return str(sdk.base_url).rstrip("/"), headers


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (delta-seconds or an HTTP date); None when absent."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Server:
    """One OpenAI-compatible server of the pool, with its clients and counters."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.name = url or "https://api.openai.com/v1"
        self.lanes: list[list[Any]] = []  # [client, requests in flight]
        self.in_flight = 0
        self.requests = self.answered = self.rate_limited = self.failed = self.taken_out = 0
        self.failures_in_row = 0
        self.down_until = 0.0

    def counts(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "rate_limited": self.rate_limited,
            "failed": self.failed,
            "taken_out": self.taken_out,
        }


class OpenAIBackend:
    """Chat or completion requests to the OpenAI API or any OpenAI-compatible server.

    model: model name the server knows (default gpt-4).
    base_url: OpenAI-compatible endpoint (vLLM, llama.cpp, TGI, Ollama); several: a pool of replicas, each request
        to the least-loaded one (default $OPENAI_BASE_URL, else api.openai.com).
    api_key: API key (default $OPENAI_API_KEY; any key for a local server); never recorded.
    concurrency: requests in flight.
    rpm: requests-per-minute limit (client side).
    timeout: seconds per request.
    max_retries: retries per request on 429, 5xx, timeouts and connection errors.
    backoff_base: seconds of the first retry's backoff (doubling, full jitter).
    backoff_cap: most seconds one backoff waits.
    price: USD per 1k prompt,completion tokens, e.g. 0.03,0.06 (default: the price table, 0 for unknown models).
    seed: seed of the retry jitter (the CLI passes the run's --seed).
    send_seed: send each request's seed to the server.
    server_cooldown: seconds a failing server of a pool is left out (doubling while it keeps failing).
    """

    name = "openai"
    batch_size = 1
    default_template = "paper_ru"
    """The paper's chat prompt (GPT-4 is a chat model)."""

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        rpm: float | None = None,
        timeout: float = 120.0,
        max_retries: int = 6,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        price: Price | str | None = None,
        seed: int = 0,
        send_seed: bool = True,
        server_cooldown: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ParameterError(f"{{concurrency}} must be >= 1, got {concurrency}")
        if rpm is not None and rpm <= 0:
            raise ParameterError(f"{{rpm}} must be > 0, got {rpm}")
        if not timeout > 0:  # 0 would be retried for minutes, every request timing out at once
            raise ParameterError(f"{{timeout}} must be > 0, got {timeout}")
        if max_retries < 0:
            raise ParameterError(f"{{max_retries}} must be >= 0, got {max_retries}")
        given_price = parse_price(price) if isinstance(price, str) else price  # a bad option before a missing key
        self.model = model or DEFAULT_MODEL
        urls = [base_url] if isinstance(base_url, str) else list(base_url or [])
        urls = [u.rstrip("/") for u in urls if u] or [u for u in [os.environ.get("OPENAI_BASE_URL")] if u]
        if len(set(urls)) != len(urls):
            raise InputError(f"--base-url: the same server is given twice ({', '.join(urls)})")
        self.base_urls: list[str] = urls
        self.base_url = urls[0] if urls else None
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if self.base_url is None:
                raise InputError("OPENAI_API_KEY is not set (needed for api.openai.com; or pass --base-url)")
            key = "EMPTY"  # local OpenAI-compatible servers accept any key
        self._api_key = key
        self.adapter_hash: str | None = None
        self.max_concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.price = price_for(self.model, given_price)
        self.send_seed = send_seed
        self.limiter = RateLimiter(rpm)
        self.rpm = rpm
        self._rng = random.Random(seed)
        if server_cooldown <= 0:
            raise ParameterError(f"{{server_cooldown}} must be > 0, got {server_cooldown}")
        self.server_cooldown = server_cooldown
        self._servers = [_Server(url) for url in self.base_urls] or [_Server(None)]
        self._http: Any = None  # the HTTP library, imported with the first client

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": self.base_url or "https://api.openai.com/v1",
            **(
                {"base_urls": self.base_urls, "server_cooldown": self.server_cooldown}
                if len(self.base_urls) > 1
                else {}
            ),
            "concurrency": self.max_concurrency,
            "rpm": self.rpm,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "price_per_1k": list(self.price),
        }

    def server_stats(self) -> dict[str, dict[str, int]]:
        """Per server (base URL), in this process: requests sent, answered (2xx/4xx), rate-limited (429), failed
        (transport errors, 5xx) and times taken out of the pool."""
        return {s.name: s.counts() for s in self._servers}

    def _lane(self, server: _Server) -> list[Any]:
        """The least busy client of ``server``: [HTTP client, requests in flight, URL of /chat/completions, URL of
        /completions, headers]. Requests are spread over several clients of <= LANE_WIDTH connections because the
        HTTP connection pool scans all its connections on every request (O(pool))."""
        if not server.lanes:
            import openai

            self._http = _http_library()
            n = max(1, -(-self.max_concurrency // LANE_WIDTH))
            width = -(-self.max_concurrency // n) + 2
            limits = self._http.Limits(max_connections=width, max_keepalive_connections=width)
            clients = [
                openai.DefaultAsyncHttpxClient(limits=limits, timeout=self.timeout, follow_redirects=True)
                for _ in range(n)
            ]
            base, headers = _sdk_headers(self._api_key, server.url, clients[0])
            headers["x-stainless-read-timeout"] = str(float(self.timeout))
            for http in clients:
                server.lanes.append([http, 0, base + "/chat/completions", base + "/completions", headers])
        return min(server.lanes, key=lambda lane: lane[1])

    async def _pick(self) -> _Server:
        """The least-loaded server that is up; when none is, wait for the first to come back (then it is tried)."""
        while True:
            now = time.monotonic()
            up = [s for s in self._servers if s.down_until <= now]
            if up:
                return min(up, key=lambda s: (s.in_flight, s.requests))
            await asyncio.sleep(min(s.down_until for s in self._servers) - now)

    def _others_up(self, server: _Server) -> bool:
        now = time.monotonic()
        return any(s is not server and s.down_until <= now for s in self._servers)

    def _server_failed(self, server: _Server) -> None:
        """Take a failing server out of a pool for a cooldown that doubles while it keeps failing. A lone server is
        never taken out: the request's own backoff is then the policy."""
        server.failed += 1
        server.failures_in_row += 1
        if len(self._servers) > 1:
            cool = min(self.backoff_cap, self.server_cooldown * 2 ** (server.failures_in_row - 1))
            if server.down_until <= time.monotonic():
                server.taken_out += 1
            server.down_until = max(server.down_until, time.monotonic() + cool)

    async def aclose(self) -> None:
        for server in self._servers:
            lanes, server.lanes = server.lanes, []
            for lane in lanes:
                await lane[0].aclose()

    def _backoff(self, attempt: int) -> float:
        return self._rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    async def complete(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        return [await self._one(r) for r in requests]

    async def _one(self, req: ChatRequest) -> Completion:
        body: dict[str, Any] = {"model": self.model, "temperature": req.temperature, "max_tokens": req.max_tokens}
        chat = req.prompt is None
        if chat:
            body["messages"] = req.messages
        else:
            body["prompt"] = req.prompt
        if req.stop:
            body["stop"] = list(req.stop)
        if self.send_seed:
            body["seed"] = req.seed
        content = json.dumps(body).encode()
        last = ""
        server = self._servers[0]
        for attempt in range(self.max_retries + 1):
            await self.limiter.acquire()
            server = await self._pick()
            lane = self._lane(server)
            lane[1] += 1
            server.in_flight += 1
            server.requests += 1
            try:
                headers = {**lane[4], "x-stainless-retry-count": str(attempt)}
                resp = await lane[0].post(lane[2] if chat else lane[3], content=content, headers=headers)
                outcome = self._outcome(resp.status_code, resp.content, resp.headers, attempt, server)
            except self._http.TimeoutException:
                outcome = (f"timeout after {self.timeout:g}s", None, True)
            except self._http.RequestError as exc:  # connection refused or reset, a protocol error, ...
                outcome = (f"connection error: {exc}", None, True)
            finally:
                lane[1] -= 1
                server.in_flight -= 1
            if isinstance(outcome, Completion):
                return outcome
            last, wait, failed = outcome
            if wait is None:
                wait = self._backoff(attempt)
            if failed:  # a transport failure or 5xx: the server is taken out of a pool
                self._server_failed(server)
            if attempt < self.max_retries:
                if self._others_up(server):
                    continue  # another server is up: retry there at once
                await asyncio.sleep(wait)
        return Completion(
            error=f"{last} (gave up after {self.max_retries} retries)",
            retries=self.max_retries,
            extra={"server": server.name},
        )

    def _outcome(
        self, status: int, content: bytes, headers: Any, attempt: int, server: _Server
    ) -> Completion | tuple[str, float | None, bool]:
        """What an HTTP reply means: a completion (a note, or a permanent failure), or (error, seconds the server
        asks to wait or None, whether the server failed) for a reply worth retrying; raises on a bad key or model."""
        if 200 <= status < 300:
            server.answered += 1
            server.failures_in_row = 0
            return self._parse(content, attempt, server)
        msg = _error_message(status, content)
        if status in (401, 403):
            raise BackendError(f"{self._where(server)}: authentication failed ({status}): {msg}")
        if status == 404:
            raise BackendError(f"{self._where(server)}: model {self.model!r} not found (404): {msg}")
        failed = status >= 500 or status == 408
        if status != 429 and not failed:
            server.answered += 1  # the server works; this request is bad
            return Completion(
                error=f"HTTP {status}: {msg}", permanent=True, retries=attempt, extra={"server": server.name}
            )
        wait = retry_after_seconds(headers)
        if status == 429:
            # The server's limit: pause only that server; its other requests wait in _pick.
            server.down_until = max(server.down_until, time.monotonic() + (wait or 0.0))
            server.rate_limited += 1
        return f"HTTP {status}: {msg}", wait, failed

    def _where(self, server: _Server) -> str:
        return server.url or "api.openai.com"

    def _parse(self, content: bytes, retries: int, server: _Server) -> Completion:
        try:
            data = json.loads(content)
            choice = data["choices"][0]
            # A /completions reply carries choices[0].text instead of a message.
            message = choice.get("message") or ({"content": choice["text"]} if "text" in choice else None)
            if not isinstance(message, dict):
                raise TypeError
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return Completion(
                error="malformed reply: no choices[0].message or choices[0].text",
                retries=retries,
                extra={"server": server.name},
            )
        usage = data.get("usage") or {}
        pt = int(usage.get("prompt_tokens") or 0)
        ct = int(usage.get("completion_tokens") or 0)
        return Completion(
            text=message.get("content"),
            finish_reason=choice.get("finish_reason"),
            refusal=message.get("refusal"),
            prompt_tokens=pt,
            completion_tokens=ct,
            cost_usd=cost_usd(pt, ct, self.price),
            retries=retries,
            model=data.get("model"),
            extra={"server": server.name},
        )


def _error_message(status: int, content: bytes) -> str:
    """The error's one line: the body's ``error.message`` (OpenAI's error shape), else the body as the SDK words it."""
    text = content.decode("utf-8", errors="replace").strip()
    body: Any = text
    with contextlib.suppress(ValueError):
        body = json.loads(text)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return " ".join(str(err["message"]).split())[:300]
    return " ".join(f"Error code: {status} - {body}".split())[:300]
