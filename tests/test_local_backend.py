"""The local backend: a tiny random LLaMA for the engine paths, a LoRA adapter, and the real SmolLM2 (short)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from medsyn.generation.backends import ChatRequest, Completion, get_backend
from medsyn.generation.backends.local_backend import LocalBackend, instruction_prompt
from medsyn.generation.config import GenerationConfig
from medsyn.generation.engine import generate
from medsyn.generation.filter import FilterConfig
from medsyn.generation.run_folder import FAILURES_FILE, NOTES_FILE
from medsyn.kg.store import OxigraphStore
from medsyn.testing import demo_samples
from medsyn.testing.tiny_llama import make_tiny_llama
from medsyn.training.models import MANIFEST_NAME, base_fingerprint, base_name

SHORT = [{"role": "user", "content": "Write one sentence about a patient with a cough."}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", seed=0)


def complete(b: LocalBackend, reqs: list[ChatRequest]) -> list[Completion]:
    return asyncio.run(b.complete(reqs))


def test_batched_generation_counts_tokens_and_stops_at_the_limit(tiny: Path) -> None:
    b = get_backend("local", model=str(tiny), batch_size=3)
    reqs = [ChatRequest(key=str(i), messages=SHORT, seed=i, max_tokens=6) for i in range(3)]
    out = complete(b, reqs)  # type: ignore[arg-type]
    assert len(out) == 3
    for c in out:
        assert c.error is None and c.prompt_tokens > 0 and c.completion_tokens <= 6 and c.cost_usd == 0.0
        assert c.finish_reason in {"stop", "length"}
    again = complete(b, reqs)  # type: ignore[arg-type]
    assert [c.text for c in again] == [c.text for c in out]  # seeded


def test_over_long_prompts_fail_alone_instead_of_being_truncated(tiny: Path) -> None:
    b = get_backend("local", model=str(tiny), batch_size=3, max_input_tokens=150)
    long = [{"role": "user", "content": "боль в спине " * 200}]
    reqs = [
        ChatRequest(key="a", messages=SHORT, seed=1, max_tokens=4),
        ChatRequest(key="b", messages=long, seed=2, max_tokens=4),
        ChatRequest(key="c", messages=SHORT, seed=3, max_tokens=4),
    ]
    out = complete(b, reqs)  # type: ignore[arg-type]
    assert out[1].error is not None and "prompt too long" in out[1].error and out[1].text is None
    assert out[1].permanent is True  # counted as an attempt on resume: it would fail again
    assert out[0].error is None and out[2].error is None and out[0].completion_tokens > 0


def test_stop_sequence_ends_the_reply_where_it_first_appears(tiny: Path) -> None:
    req = [ChatRequest(key="a", messages=SHORT, seed=7, max_tokens=30)]
    free = complete(get_backend("local", model=str(tiny), stop=()), req)[0]  # type: ignore[arg-type]
    assert free.text and len(free.text) > 4
    marker = free.text[len(free.text) // 2]
    stopped = complete(get_backend("local", model=str(tiny), stop=[marker]), req)[0]  # type: ignore[arg-type]
    assert stopped.text == free.text[: free.text.find(marker)]
    assert stopped.finish_reason == "stop"


def test_instruction_format_without_chat_template() -> None:
    text = instruction_prompt([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert text == "### Задание: S\n### Вход: U\n### Ответ: "


def test_engine_with_the_tiny_model_records_local_provenance(tiny: Path, tmp_path: Path) -> None:
    store = OxigraphStore.in_memory()
    be = get_backend("local", model=str(tiny), batch_size=4)
    cfg = GenerationConfig(
        template="paper_en",
        max_tokens=8,
        max_attempts=1,
        filter=FilterConfig(min_recall=0, max_similarity=1, min_words=0),
    )
    s = generate(demo_samples(5), tmp_path / "o", store=store, backend=be, config=cfg)
    recs = [json.loads(x) for p in (NOTES_FILE, FAILURES_FILE) for x in (tmp_path / "o" / p).read_text().splitlines()]
    assert s.attempts == 5 == len(recs) and {r["backend"] for r in recs} == {"local"}
    assert all(r["usage"]["completion_tokens"] <= 8 for r in recs)
    rows = store.query(
        "PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT ?m WHERE { ?a ms:backend 'local' ; ms:modelName ?m }"
    )
    assert [r["m"].value for r in rows] == [str(tiny.resolve())]


def test_lora_adapter_hash_goes_into_the_agent(tiny: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(str(tiny)),
        LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )
    adapter = tmp_path / "adapter"
    model.save_pretrained(str(adapter))
    manifest = {"base": base_name(str(tiny)), "base_fingerprint": base_fingerprint(str(tiny))}
    (adapter / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")

    store = OxigraphStore.in_memory()
    be = get_backend("local", model=str(tiny), adapter=adapter, batch_size=2)
    cfg = GenerationConfig(template="paper_en", max_tokens=4, max_attempts=1, filter=FilterConfig(min_words=0))
    generate(demo_samples(2), tmp_path / "o", store=store, backend=be, config=cfg)
    rows = store.query("PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT ?h WHERE { ?a ms:adapterHash ?h }")
    assert [r["h"].value for r in rows] == [be.adapter_hash] and be.adapter_hash.startswith("sha256:")


def test_real_smollm2_writes_text() -> None:
    b = get_backend("local", model="smollm2", batch_size=2)  # the packaged SmolLM2-135M-Instruct GGUF
    assert b.model == "smollm2"
    reqs = [ChatRequest(key=str(i), messages=SHORT, seed=i, temperature=0.0, max_tokens=12) for i in range(2)]
    out = complete(b, reqs)  # type: ignore[arg-type]
    for c in out:
        assert c.error is None and c.completion_tokens > 0
        assert any(ch.isalpha() for ch in c.text or "")
