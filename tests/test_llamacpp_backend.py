"""The ``llamacpp`` backend and the Gemma 3 270M default: the real packaged GGUF, run by llama.cpp in-process and by
transformers, seeded, with one-line errors; and ``medsyn generate --backend llamacpp`` as users run it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medsyn.errors import InputError
from medsyn.generation.backends import ChatRequest, Completion, get_backend
from medsyn.training.models import GEMMA3, gguf_path, resolve_base

MEDSYN = str(Path(sys.executable).with_name("medsyn"))
PROMPT = (
    "Жалобы: боль в горле, насморк, температура 37,5.\nЖалобы: кашель с мокротой, слабость, температура 38.\nЖалобы:"
)


def complete(backend: object, reqs: list[ChatRequest]) -> list[Completion]:
    return asyncio.run(backend.complete(reqs))  # type: ignore[attr-defined]


def cyrillic_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum("а" <= c.lower() <= "я" or c in "ёЁ" for c in letters) / max(1, len(letters))


@pytest.fixture(scope="module")
def llama() -> object:
    return get_backend("llamacpp", model=GEMMA3)


def test_gemma3_is_assembled_once_from_its_packages(tmp_path: Path) -> None:
    path = gguf_path(GEMMA3)
    assert path is not None and path.name == "gemma-3-270m-q4_k_m.gguf" and path.stat().st_size > 200_000_000
    assert resolve_base("gemma3")[1] == path.name
    assert not list(path.parent.glob(".*.tmp"))  # no half-assembled file is left behind


def test_llamacpp_writes_russian_and_is_seeded(llama: object) -> None:
    reqs = [
        ChatRequest(key=str(i), messages=[], prompt=PROMPT, seed=s, temperature=0.8, max_tokens=24, stop=("\n",))
        for i, s in enumerate((1, 1, 2))
    ]
    a, b, c = complete(llama, reqs)
    assert a.error is None and a.completion_tokens > 0 and a.prompt_tokens > 20
    assert a.text == b.text  # same prompt and seed: the same note
    assert "\n" not in (a.text or "") and cyrillic_share(a.text or "") > 0.8
    assert a.finish_reason in ("stop", "length") and c.error is None


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_llamacpp_memory_stays_flat_over_distinct_prompts(llama: object) -> None:
    # llama.cpp's server caches every finished prompt's KV state in host memory (8 GiB by default); measured here
    # with that cache, 12 such prompts grew the process by ~110 MB (~9 MB each; the 6 here would add ~55), and a
    # 1,500-sample run by ~6 GB.
    body = "Жалобы: боль в горле, насморк, температура 37,5 и слабость, кашель с мокротой по утрам. " * 8

    def one(i: int) -> Completion:
        req = ChatRequest(key=str(i), messages=[], prompt=f"{i} {body}\nЖалобы:", seed=1, max_tokens=4, stop=("\n",))
        return complete(llama, [req])[0]

    one(0), one(1)  # the first requests allocate the engine's working buffers
    before = rss_mib()
    replies = [one(i) for i in range(2, 8)]
    assert all(r.error is None and r.prompt_tokens > 150 for r in replies)
    assert rss_mib() - before < 30
    assert llama.describe()["prompt_cache_mib"] == 0  # type: ignore[attr-defined]


def test_llamacpp_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    short = get_backend("llamacpp", model=GEMMA3, max_input_tokens=8)
    (out,) = complete(short, [ChatRequest(key="x", messages=[], prompt=PROMPT, max_tokens=4)])
    assert out.error is not None and out.error.startswith("prompt too long") and out.permanent
    with pytest.raises(InputError, match="needs a GGUF model"):
        complete(get_backend("llamacpp", model=str(_tiny_dir(tmp_path))), [ChatRequest(key="y", messages=[])])


def _listening_tcp_inodes() -> set[str]:
    """Inodes of the TCP sockets this process listens on (state 0A in /proc/net/tcp{,6})."""
    mine = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[8:-1])
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == "0A":
                listening.add(cols[9])
    return mine & listening


def test_llamacpp_engine_has_no_listener_another_process_can_reach() -> None:
    # llama.cpp's server code binds an HTTP listener (a random 127.0.0.1 port, no key, /slots open) beside the
    # in-process handlers; here it is a keyed Unix socket whose private folder is gone once the engine is up.
    import socket

    before = _listening_tcp_inodes()
    be = get_backend("llamacpp", model=GEMMA3, max_input_tokens=64, max_tokens=4)
    (out,) = complete(be, [ChatRequest(key="a", messages=[], prompt=PROMPT, seed=1, max_tokens=2)])
    assert out.error is None and out.completion_tokens > 0
    assert _listening_tcp_inodes() - before == set()
    address = be._load().listening_address  # type: ignore[attr-defined]
    assert address.startswith("unix://")
    path = Path(address.removeprefix("unix://"))
    assert not path.exists() and not path.parent.exists()
    with socket.socket(socket.AF_UNIX) as client, pytest.raises(OSError):
        client.connect(str(path))


def test_llamacpp_checks_the_prompt_before_generating_and_sizes_slots_by_max_tokens() -> None:
    be = get_backend("llamacpp", model=GEMMA3, max_input_tokens=8, max_tokens=16)
    req = ChatRequest(key="long", messages=[], prompt=PROMPT, seed=1, max_tokens=12, stop=())
    (out,) = complete(be, [req])
    assert out.error is not None and out.error.startswith("prompt too long") and out.permanent
    # Only the prompt was evaluated: llama.cpp samples one token to end a zero-length request, no more.
    assert be.engine_counts()["tokens_predicted_total"] <= 1  # type: ignore[attr-defined]
    (over,) = complete(be, [ChatRequest(key="big", messages=[], prompt="Жалобы:", max_tokens=17)])
    assert over.permanent and over.error == "max_tokens 17 > the llamacpp backend's max_tokens 16"


def _tiny_dir(tmp_path: Path) -> Path:
    from medsyn.testing.tiny_llama import make_tiny_llama

    return make_tiny_llama(tmp_path / "tiny")


def test_transformers_runs_the_same_gguf_with_a_completion_prompt() -> None:
    be = get_backend("local", model=GEMMA3, batch_size=1)
    (out,) = complete(
        be, [ChatRequest(key="t", messages=[], prompt=PROMPT, seed=3, temperature=0.0, max_tokens=16, stop=("\n",))]
    )
    assert out.error is None and out.completion_tokens > 0 and cyrillic_share(out.text or "") > 0.8
    assert be.model == "gemma3"


def test_cli_generate_with_llamacpp_records_few_shot_provenance(shared_data: Path, tmp_path: Path) -> None:
    from sampling_graph import real_graph

    from medsyn.kg.store import OxigraphStore

    store_dir = tmp_path / "store"
    with OxigraphStore(store_dir) as st:
        real_graph(shared_data, version="kg-llama").into(st)
    out = tmp_path / "run"
    args = [
        MEDSYN,
        "generate",
        "--backend",
        "llamacpp",
        "--n",
        "2",
        "--codes",
        "J06",
        "--seed",
        "2",
        "--max-attempts",
        "1",
        "--max-tokens",
        "64",
        "--temperature",
        "0.7",
        "--store",
        str(store_dir),
        "--out",
        str(out),
        "--no-progress",
    ]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, env={**os.environ})
    summary = json.loads(r.stdout.splitlines()[-1])
    # Exit 0 when a note was accepted, 1 (a finding: nothing produced) otherwise; never a traceback.
    assert r.returncode == (0 if summary["accepted"] else 1), r.stderr
    assert "Traceback" not in r.stderr and summary["attempts"] == 2
    run = json.loads((out / "run.json").read_text())
    assert run["identity"]["template"] == "paper_fewshot_ru" and run["parameters"]["backend_options"]["engine"]
    assert run["parameters"]["backend_options"]["max_tokens"] == 64  # --max-tokens sizes the engine's slots
    recs = [json.loads(x) for f in ("notes.jsonl", "failures.jsonl") for x in (out / f).read_text().splitlines()]
    assert len(recs) == 2 and all(len(x["example_ids"]) == 5 for x in recs)
    # A fresh run of the same command (a new run id) writes the same notes: the seed decides, not the run.
    again = tmp_path / "again"
    r2 = subprocess.run([*args[:-3], "--out", str(again), "--no-progress"], capture_output=True, text=True, timeout=600)
    assert "Traceback" not in r2.stderr
    recs2 = [json.loads(x) for f in ("notes.jsonl", "failures.jsonl") for x in (again / f).read_text().splitlines()]

    def by_sample(rs: list[dict]) -> dict:
        return {(x["sample_id"], x["attempt"]): (x["seed"], x.get("response")) for x in rs}

    assert recs2[0]["run_id"] != recs[0]["run_id"] and by_sample(recs2) == by_sample(recs)
