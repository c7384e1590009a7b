"""The openai backend against a real HTTP server on 127.0.0.1 that speaks the chat completions API."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from email.utils import formatdate
from time import time

import pytest

from medsyn.errors import BackendError, InputError
from medsyn.generation.backends import ChatRequest, Completion, get_backend
from medsyn.generation.backends.openai_backend import OpenAIBackend, retry_after_seconds
from medsyn.generation.backends.pricing import cost_usd, parse_price, price_for
from medsyn.generation.replies import parse_reply
from medsyn.testing.openai_server import FakeOpenAIServer

MESSAGES = [
    {"role": "system", "content": "Ответ должен быть на русском языке."},
    {"role": "user", "content": "Исходный анамнез:\nболи в спине\n\nиспользуя их всех:\nкашель; лихорадка.\n\nВсё."},
]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(latency=0.0) as srv:
        yield srv


def backend(srv: FakeOpenAIServer, **kw: object) -> OpenAIBackend:
    opts: dict[str, object] = dict(base_url=srv.base_url, backoff_base=0.01, max_retries=3)
    opts.update(kw)
    return get_backend("openai", **opts)  # type: ignore[return-value]


def call(b: OpenAIBackend, n: int = 1) -> list[Completion]:
    async def run() -> list[Completion]:
        try:
            reqs = [ChatRequest(key=str(i), messages=MESSAGES, seed=i) for i in range(n)]
            return [c for r in await asyncio.gather(*(b.complete([q]) for q in reqs)) for c in r]
        finally:
            await b.aclose()

    return asyncio.run(run())


def test_reply_usage_and_cost(server: FakeOpenAIServer) -> None:
    (c,) = call(backend(server))
    assert c.error is None and c.finish_reason == "stop"
    assert "кашель" in (c.text or "") and "лихорадка" in (c.text or "")
    assert c.prompt_tokens > 0 and c.completion_tokens > 0
    assert c.cost_usd == pytest.approx(cost_usd(c.prompt_tokens, c.completion_tokens, (0.03, 0.06)))
    assert parse_reply(c.text, finish_reason=c.finish_reason).ok


def test_429_honours_retry_after_and_pauses(server: FakeOpenAIServer) -> None:
    server.configure(script=["429", "429"], retry_after=0.3)
    (c,) = call(backend(server, backoff_base=0.0))
    st = server.stats()
    assert c.error is None and c.retries == 2
    assert st["by_action"] == {"429": 2, "ok": 1}
    gaps = [b - a for a, b in zip(st["arrivals"], st["arrivals"][1:], strict=False)]
    assert all(g >= 0.29 for g in gaps), gaps  # the client waited at least Retry-After, not its own 0 s backoff


def test_500_is_retried_with_backoff(server: FakeOpenAIServer) -> None:
    server.configure(script=["500", "500"])
    (c,) = call(backend(server))
    assert c.error is None and c.retries == 2


def test_persistent_500_becomes_a_recorded_failure(server: FakeOpenAIServer) -> None:
    server.configure(rates={"500": 1.0})
    (c,) = call(backend(server, max_retries=2))
    assert c.text is None and c.error is not None and "HTTP 500" in c.error and "gave up after 2" in c.error
    assert server.stats()["requests"] == 3
    assert c.permanent is False  # a resumed run tries it again


def test_other_4xx_is_a_permanent_failure_not_retried(server: FakeOpenAIServer) -> None:
    b = backend(server)

    async def run() -> list[Completion]:
        try:  # messages that are not a list: the server answers 400
            return await b.complete([ChatRequest(key="x", messages="bad", seed=0)])  # type: ignore[arg-type]
        finally:
            await b.aclose()

    (c,) = asyncio.run(run())
    assert c.error is not None and "HTTP 400" in c.error and c.permanent is True and c.retries == 0


def test_slow_reply_times_out_and_is_retried(server: FakeOpenAIServer) -> None:
    server.configure(script=["hang"])
    (c,) = call(backend(server, timeout=0.3))
    assert c.error is None and c.retries == 1


def test_refusal_field_and_text_refusals_are_failures(server: FakeOpenAIServer) -> None:
    server.configure(script=["refusal_field", "refusal", "empty", "truncated"])
    cs = call(backend(server, concurrency=1), n=4)
    statuses = sorted(parse_reply(c.text, finish_reason=c.finish_reason, refusal=c.refusal).status for c in cs)
    assert statuses == ["empty", "refused", "refused", "truncated"]


def test_bad_key_stops_the_run_with_one_line(server: FakeOpenAIServer) -> None:
    server.configure(api_key="right")
    with pytest.raises(BackendError, match=r"authentication failed \(401\)"):
        call(backend(server, api_key="wrong"))


def test_requests_per_minute_limit_spaces_requests(server: FakeOpenAIServer) -> None:
    be = backend(server, rpm=600)  # one request per 0.1 s
    call(be, n=5)
    assert len(server.stats()["arrivals"]) == 5
    # The limiter's own schedule: every request started at its reserved slot, slots 0.1 s apart (arrival times
    # at the server also carry the machine's load, so they are not what is checked).
    slots = list(be.limiter.schedule)
    assert len(slots) == 5
    assert all(b - a == pytest.approx(0.1) or b - a > 0.1 for a, b in itertools.pairwise(slots)), slots


def test_missing_key_without_base_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(InputError, match="OPENAI_API_KEY"):
        get_backend("openai")
    with pytest.raises(InputError, match="unknown backend"):
        get_backend("nope")


def test_an_unknown_backend_option_is_an_error_naming_the_nearest() -> None:
    # A misspelt option used to be swallowed by **_ignored: concurency=1 silently kept 8 requests in flight.
    line = r"^the openai backend has no option 'concurency'; did you mean 'concurrency'\?$"
    with pytest.raises(InputError, match=line):
        get_backend("openai", base_url="http://127.0.0.1:1/v1", concurency=1)
    with pytest.raises(InputError, match="the llamacpp backend has no option 'seed'"):
        get_backend("llamacpp", seed=1)
    with pytest.raises(InputError, match="the local backend has no option 'batchsize'; did you mean 'batch_size'"):
        get_backend("local", batchsize=1)
    assert get_backend("openai", base_url="http://127.0.0.1:1/v1", concurrency=1).max_concurrency == 1


def test_retry_after_parsing() -> None:
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    later = retry_after_seconds({"retry-after": formatdate(time() + 30, usegmt=True)})
    assert later is not None and 25 < later <= 31
    assert retry_after_seconds({}) is None and retry_after_seconds({"retry-after": "soon"}) is None


def test_price_table_and_overrides() -> None:
    assert price_for("gpt-4") == (0.03, 0.06)
    assert price_for("gpt-4o-mini-2024-07-18") == (0.00015, 0.0006)
    assert price_for("llama3:8b") == (0.0, 0.0)
    assert price_for("gpt-4", parse_price("1,2")) == (1.0, 2.0)
    with pytest.raises(InputError):
        parse_price("cheap")


# ------------------------------------------------------------------------------------------ a pool of servers


def test_pool_goes_around_a_dead_server_and_names_the_server_of_each_reply(server: FakeOpenAIServer) -> None:
    from medsyn.testing.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connection refused
    with FakeOpenAIServer(latency=0.0) as other:
        b = backend(server, base_url=[dead, server.base_url, other.base_url], concurrency=4, server_cooldown=30)
        cs = call(b, n=12)
        other_n = other.stats()["requests"]
    assert all(c.error is None for c in cs)
    stats = b.server_stats()
    assert stats[dead]["failed"] >= 1 and stats[dead]["taken_out"] == 1 and stats[dead]["answered"] == 0
    # taken out for 30 s: after its first failures it gets no more requests
    assert stats[dead]["requests"] == stats[dead]["failed"] <= 4
    assert {c.extra["server"] for c in cs} == {server.base_url, other.base_url}
    assert stats[server.base_url]["answered"] + stats[other.base_url]["answered"] == 12
    assert server.stats()["requests"] > 0 and other_n > 0
    assert b.describe()["base_urls"] == [dead, server.base_url, other.base_url]


def test_pool_sends_more_to_the_less_loaded_server(server: FakeOpenAIServer) -> None:
    with FakeOpenAIServer(latency=0.2) as slow:
        b = backend(server, base_url=[slow.base_url, server.base_url], concurrency=4)
        server.configure(latency=0.02)

        async def run() -> None:  # 4 requests in flight at a time, as the generation engine keeps them
            gate = asyncio.Semaphore(4)

            async def one(i: int) -> None:
                async with gate:
                    await b.complete([ChatRequest(key=str(i), messages=MESSAGES)])

            try:
                await asyncio.gather(*(one(i) for i in range(24)))
            finally:
                await b.aclose()

        asyncio.run(run())
        fast_n, slow_n = server.stats()["requests"], slow.stats()["requests"]
    assert fast_n + slow_n == 24 and fast_n > 2 * slow_n, (fast_n, slow_n)


def test_pool_tries_a_taken_out_server_again_after_its_cooldown(server: FakeOpenAIServer) -> None:
    with FakeOpenAIServer(latency=0.0) as other:
        server.configure(script=["500"])
        b = backend(server, base_url=[server.base_url, other.base_url], concurrency=1, server_cooldown=0.3)

        async def run() -> tuple[list[Completion], list[Completion]]:
            try:
                first = await b.complete([ChatRequest(key="0", messages=MESSAGES)])
                await asyncio.sleep(0.4)  # past the cooldown
                later = await b.complete([ChatRequest(key="1", messages=MESSAGES)])
                return first, later
            finally:
                await b.aclose()

        (first,), (later,) = asyncio.run(run())
    assert first.error is None and first.extra["server"] == other.base_url and first.retries == 1
    assert later.error is None and later.extra["server"] == server.base_url  # back in the pool, least used
    s = b.server_stats()[server.base_url]
    assert s == {"requests": 2, "answered": 1, "rate_limited": 0, "failed": 1, "taken_out": 1}


def test_a_base_url_given_twice_is_refused() -> None:
    with pytest.raises(InputError, match="the same server is given twice"):
        get_backend("openai", base_url=["http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1/"])
