"""The ``openai`` backend against a real model server: llama.cpp's OpenAI-compatible server with the embedded Gemma 3
270M GGUF (:mod:`medsyn.testing.llama_server`), two of them as a pool, on 127.0.0.1, for ``/v1/completions`` (the
few-shot prompt, through the CLI) and ``/v1/chat/completions``, at a sampling temperature with a seed.

The server is deterministic: the same request (prompt, seed, sampling settings) gives the same text on either server.
Its notes equal the in-process ``llamacpp`` backend's with ``check_prompt=false`` (one pass per request, as a server
computes it). With the default ``check_prompt=true`` the in-process engine evaluates the prompt first and then
generates from its cache, which evaluates the prompt's last token alone; the logits then differ in their last bits,
and a near tie can pick another token (measured: 2 of 3 few-shot notes at temperature 0, 1 of 4 chat replies at
0.7). A server answering a prompt its slot already holds does the same (its prompt cache), so the prompts here are
distinct."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from medsyn.generation.backends import ChatRequest, Completion, get_backend
from medsyn.testing.commands import MEDSYN
from medsyn.testing.servers import RunningOpenAIServer, llama_server


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningOpenAIServer, RunningOpenAIServer]]:
    logs = tmp_path_factory.mktemp("llama")
    # The in-process engine's slot size (--max-tokens 16 below): the context's size changes how attention sums, so
    # greedy decoding on a long few-shot prompt can part ways with another size.
    sized = ("--max-tokens", "16")
    with llama_server(logs / "a.log", extra_args=sized) as a, llama_server(logs / "b.log", extra_args=sized) as b:
        yield a, b
    assert a.process.poll() is not None and b.process.poll() is not None  # both stopped, none left behind


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    from sampling_graph import real_graph

    from medsyn.kg.store import OxigraphStore

    path = tmp_path_factory.mktemp("kg") / "store"
    with OxigraphStore(path) as st:
        real_graph(shared_data, version="kg-llama-server").into(st)
    return path


def generate(store: Path, out: Path, *backend: str) -> list[dict]:
    args = [*MEDSYN, "generate", *backend, "--n", "2", "--codes", "J06", "--seed", "5", "--max-attempts", "1",
            "--shots", "2", "--max-tokens", "16", "--temperature", "0.8", "--template", "paper_fewshot_ru",
            "--store", str(store), "--out", str(out), "--no-progress"]  # fmt: skip
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert "Traceback" not in r.stderr and r.returncode in (0, 1), r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["attempts"] == 2
    return [json.loads(x) for f in ("notes.jsonl", "failures.jsonl") for x in (out / f).read_text().splitlines()]


def by_sample(records: list[dict]) -> dict[tuple[str, int], tuple[int, str | None, str]]:
    return {(x["sample_id"], x["attempt"]): (x["seed"], x.get("response"), x["status"]) for x in records}


def test_few_shot_completions_from_a_pool_equal_the_in_process_engine(
    pool: tuple[RunningOpenAIServer, RunningOpenAIServer], store_dir: Path, tmp_path: Path
) -> None:
    a, b = pool
    served = generate(store_dir, tmp_path / "served", "--backend", "openai", "--model", "gemma3",
                      "--base-url", a.base_url, "--base-url", b.base_url, "--concurrency", "2")  # fmt: skip
    local = generate(store_dir, tmp_path / "local", "--backend", "llamacpp", "--option", "check_prompt=false")
    assert len(served) == 2 and all(len(x["example_ids"]) == 2 for x in served)
    assert all(x["usage"]["completion_tokens"] > 0 for x in served)  # the server answered every request
    assert {x["server"] for x in served} == {a.base_url, b.base_url}  # both servers of the pool were used
    assert by_sample(served) == by_sample(local)


def test_chat_completions_from_a_pool_equal_the_in_process_engine(
    pool: tuple[RunningOpenAIServer, RunningOpenAIServer],
) -> None:
    a, b = pool
    # Distinct prompts: a prompt a slot already holds is evaluated from its cache, which is what check_prompt avoids.
    asks = ("ангиной", "гриппом", "мигренью")
    reqs = [
        ChatRequest(key=str(s), messages=[{"role": "user", "content": f"Напиши жалобы пациента с {ask}."}], seed=s,
                    temperature=0.7, max_tokens=12, stop=("\n",))
        for s, ask in enumerate(asks)
    ]  # fmt: skip
    remote = get_backend("openai", model="gemma3", base_url=[a.base_url, b.base_url], concurrency=2)

    async def both() -> list[Completion]:
        return [c for r in await asyncio.gather(*(remote.complete([q]) for q in reqs)) for c in r]

    served = asyncio.run(both())
    local = asyncio.run(get_backend("llamacpp", model="gemma3", max_tokens=16, check_prompt=False).complete(reqs))
    assert all(c.error is None and c.completion_tokens > 0 for c in served)
    assert {c.extra["server"] for c in served} == {a.base_url, b.base_url}
    assert [c.text for c in served] == [c.text for c in local]
    assert [c.prompt_tokens for c in served] == [c.prompt_tokens for c in local]  # the same chat template applied
