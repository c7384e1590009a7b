"""The ``openai`` backend: GPT-4 by default, or any OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama).

Built on the official ``openai.AsyncOpenAI`` client with its own retries switched off (``max_retries=0``): the
retry policy lives here so that it is visible, testable and shared across requests:

* 429, 5xx, timeouts and connection errors are retried up to ``max_retries`` times with exponential backoff and
  full jitter (``uniform(0, min(cap, base * 2**n))``, seeded);
* a ``Retry-After`` (or ``retry-after-ms``) header wins over the backoff and pauses *all* requests;
* ``rpm`` spaces request starts (client-side requests-per-minute limit);
* 401/403/404 stop the run with one clear line; other 4xx fail the one request.

A request with a completion prompt (``ChatRequest.prompt``, from a ``"mode": "completion"`` template) goes to
``/completions`` (the API base models are served with: vLLM, llama.cpp server, TGI); chat messages go to
``/chat/completions``.

Requests go through the client's low-level ``post`` with a plain JSON body, and the reply JSON is read directly,
rather than through ``chat.completions.create`` and its pydantic models: the typed path costs ~3 ms of CPU per
request (parameter transformation and response validation), which would cap throughput at high concurrency; the
low-level path keeps the client's auth, base URL, timeouts and typed HTTP errors, and tolerates servers that omit
optional reply fields. Token usage comes from the reply's ``usage``;
cost from :mod:`medsyn.backends.pricing`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from collections.abc import Sequence
from typing import Any

from medsyn.backends import ChatRequest, Completion
from medsyn.backends.pricing import Price, cost_usd, price_for
from medsyn.backends.ratelimit import RateLimiter
from medsyn.errors import BackendError, InputError, ParameterError

DEFAULT_MODEL = "gpt-4"
LANE_WIDTH = 8


def _limits(n: int) -> Any:
    """Connection limits in the HTTP library the installed ``openai`` is built on (httpx, or httpx2 in 3.x)."""
    try:
        import httpx2 as httpx  # type: ignore[import-not-found]
    except ImportError:
        import httpx
    return httpx.Limits(max_connections=n, max_keepalive_connections=n)


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


class OpenAIBackend:
    name = "openai"
    batch_size = 1

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        rpm: float | None = None,
        timeout: float = 120.0,
        max_retries: int = 6,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        price: Price | None = None,
        seed: int = 0,
        send_seed: bool = True,
        **_ignored: Any,
    ) -> None:
        if concurrency < 1:
            raise ParameterError(f"{{concurrency}} must be >= 1, got {concurrency}")
        if rpm is not None and rpm <= 0:
            raise ParameterError(f"{{rpm}} must be > 0, got {rpm}")
        self.model = model or DEFAULT_MODEL
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
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
        self.price = price_for(self.model, price)
        self.send_seed = send_seed
        self.limiter = RateLimiter(rpm)
        self.rpm = rpm
        self._rng = random.Random(seed)
        self._lanes: list[list[Any]] = []  # [client, requests in flight]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": self.base_url or "https://api.openai.com/v1",
            "concurrency": self.max_concurrency,
            "rpm": self.rpm,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "price_per_1k": list(self.price),
        }

    def _lane(self) -> list[Any]:
        """The least busy client. Requests are spread over several clients of <= LANE_WIDTH connections because
        the HTTP connection pool scans all its connections on every request (O(pool) per request)."""
        if not self._lanes:
            import openai

            n = max(1, -(-self.max_concurrency // LANE_WIDTH))
            width = -(-self.max_concurrency // n) + 2
            for _ in range(n):
                http = openai.DefaultAsyncHttpxClient(
                    limits=_limits(width), timeout=self.timeout, follow_redirects=True
                )
                client = openai.AsyncOpenAI(
                    api_key=self._api_key,
                    base_url=self.base_url,
                    max_retries=0,
                    timeout=self.timeout,
                    http_client=http,
                )
                self._lanes.append([client, 0])
        return min(self._lanes, key=lambda lane: lane[1])

    async def aclose(self) -> None:
        lanes, self._lanes = self._lanes, []
        for client, _ in lanes:
            await client.close()

    def _backoff(self, attempt: int) -> float:
        return self._rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    async def complete(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        return [await self._one(r) for r in requests]

    async def _one(self, req: ChatRequest) -> Completion:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.model,
            "temperature": req.temperature,
            "max_tokens": req.max_tokens,
        }
        if req.prompt is not None:
            path, kwargs["prompt"] = "/completions", req.prompt
        else:
            path, kwargs["messages"] = "/chat/completions", req.messages
        if req.stop:
            kwargs["stop"] = list(req.stop)
        if self.send_seed:
            kwargs["seed"] = req.seed
        last = ""
        for attempt in range(self.max_retries + 1):
            await self.limiter.acquire()
            lane = self._lane()
            lane[1] += 1
            try:
                content = await lane[0].post(path, body=kwargs, cast_to=bytes)
                return self._parse(content, attempt)
            except openai.APIStatusError as exc:
                status = exc.status_code
                msg = _error_message(exc)
                if status in (401, 403):
                    raise BackendError(f"{self._where()}: authentication failed ({status}): {msg}") from None
                if status == 404:
                    raise BackendError(f"{self._where()}: model {self.model!r} not found (404): {msg}") from None
                if status != 429 and status < 500 and status != 408:
                    return Completion(error=f"HTTP {status}: {msg}", permanent=True, retries=attempt)
                last = f"HTTP {status}: {msg}"
                wait = retry_after_seconds(exc.response.headers)
                if wait is not None:
                    self.limiter.pause(wait)
                else:
                    wait = self._backoff(attempt)
            except openai.APITimeoutError:
                last, wait = f"timeout after {self.timeout:g}s", self._backoff(attempt)
            except openai.APIConnectionError as exc:
                last, wait = f"connection error: {exc.__cause__ or exc}", self._backoff(attempt)
            finally:
                lane[1] -= 1
            if attempt < self.max_retries:
                await asyncio.sleep(wait)
        return Completion(error=f"{last} (gave up after {self.max_retries} retries)", retries=self.max_retries)

    def _where(self) -> str:
        return self.base_url or "api.openai.com"

    def _parse(self, content: bytes, retries: int) -> Completion:
        try:
            data = json.loads(content)
            choice = data["choices"][0]
            # A /completions reply carries choices[0].text instead of a message.
            message = choice.get("message") or ({"content": choice["text"]} if "text" in choice else None)
            if not isinstance(message, dict):
                raise TypeError
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return Completion(error="malformed reply: no choices[0].message or choices[0].text", retries=retries)
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
        )


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return " ".join(str(err["message"]).split())[:300]
    return " ".join(str(getattr(exc, "message", exc)).split())[:300]
