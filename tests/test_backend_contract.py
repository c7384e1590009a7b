"""One contract for every registered backend (pykeen's pattern): each runs the same suite, so a new backend is
held to what the engine and provenance rely on. A backend without a maker below fails here: add one with it.

The makers build working instances cheaply: openai against the project's OpenAI-compatible test server, local with
the tiny random LLaMA, llamacpp with the packaged Gemma 3 270M GGUF."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from medsyn.component_options import REQUIRED
from medsyn.errors import InputError, ParameterError
from medsyn.generation.backends import (
    Backend,
    ChatRequest,
    available_backends,
    backend_factory,
    backend_options,
    get_backend,
)
from medsyn.generation.prompts import load_template
from medsyn.testing.openai_server import FakeOpenAIServer
from medsyn.testing.tiny_llama import make_tiny_llama
from medsyn.training.models import GEMMA3

SECRET = "sk-contract-secret-0123456789"
MESSAGES = [{"role": "user", "content": "Жалобы: кашель, слабость. Напиши жалобы пациента."}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(latency=0.0) as srv:
        yield srv


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "llama", seed=0)


Maker = Callable[[pytest.FixtureRequest], dict[str, Any]]
MAKERS: dict[str, Maker] = {
    "openai": lambda fx: {"base_url": fx.getfixturevalue("server").base_url, "max_retries": 0},
    "local": lambda fx: {"model": str(fx.getfixturevalue("tiny")), "batch_size": 1},
    "llamacpp": lambda fx: {"model": GEMMA3, "max_input_tokens": 128, "max_tokens": 8},
}
"""The options that make a working instance of each backend."""

DETERMINISTIC = {"openai", "local", "llamacpp"}
"""Backends whose text is a function of the request and its seed."""

BACKENDS = available_backends()


def _words(text: str) -> str:
    return " ".join(text.split())


def _make(name: str, fx: pytest.FixtureRequest, **extra: Any) -> Backend:
    if name not in MAKERS:
        pytest.fail(f"backend {name!r} has no maker in tests/test_backend_contract.py: add one with the backend")
    return get_backend(name, **MAKERS[name](fx), **extra)


@pytest.mark.parametrize("name", BACKENDS)
def test_options_are_declared_typed_and_documented(name: str) -> None:
    factory = backend_factory(name)
    options = backend_options(name)
    assert options, "a backend declares at least its model"
    assert "model" in options
    for o in options.values():
        assert o.type_text != "any" and o.help, f"{name}: option {o.name} needs a type and a 'name: text' doc line"
        assert o.default is not REQUIRED, f"{name}: option {o.name} needs a default (a bare --backend must work)"
    template = getattr(factory, "default_template", None)
    assert template is not None and load_template(template).name == template


@pytest.mark.parametrize("name", BACKENDS)
def test_an_unknown_option_is_one_line_naming_the_nearest(name: str) -> None:
    first = next(iter(backend_options(name)))
    with pytest.raises(InputError) as err:
        get_backend(name, **{first + "x": 1})
    assert str(err.value) == f"the {name} backend has no option {first + 'x'!r}; did you mean {first!r}?"


@pytest.mark.parametrize("name", BACKENDS)
def test_a_bad_option_value_is_one_line_naming_the_option(name: str) -> None:
    number = next(o for o in backend_options(name).values() if o.type in (int, float))
    with pytest.raises(ParameterError) as err:
        get_backend(name, **{number.name: "many"})
    assert err.value.params == (number.name,) and "\n" not in str(err.value) and "'many'" in str(err.value)


@pytest.mark.parametrize("name", BACKENDS)
def test_describe_has_the_provenance_fields_and_no_secret(name: str, request: pytest.FixtureRequest) -> None:
    secrets = {o.name: SECRET for o in backend_options(name).values() if "key" in o.name or o.name == "token"}
    be = _make(name, request, **secrets)
    described = be.describe()
    assert described["backend"] == name == be.name and described["model"] == be.model
    assert isinstance(be.batch_size, int) and isinstance(be.max_concurrency, int) and be.max_concurrency >= 1
    text = json.dumps(described)  # provenance is JSON: every value must serialise
    assert SECRET not in text and SECRET[:12] not in text


@pytest.mark.parametrize("name", BACKENDS)
def test_the_same_seed_gives_the_same_note(name: str, request: pytest.FixtureRequest) -> None:
    if name not in DETERMINISTIC:
        pytest.fail(f"say in DETERMINISTIC whether {name!r} is seeded, and test what it promises instead")
    be = _make(name, request)
    reqs = [ChatRequest(key=k, messages=MESSAGES, seed=7, temperature=1.0, max_tokens=8) for k in ("a", "b")]
    other = [{"role": "user", "content": "Жалобы: насморк, боль в горле. Напиши жалобы пациента."}]
    reqs.append(ChatRequest(key="c", messages=other, seed=8, temperature=1.0, max_tokens=8))

    async def run() -> list[Any]:
        try:
            return [c for r in reqs for c in await be.complete([r])]
        finally:
            await be.aclose()

    a, b, c = asyncio.run(run())
    assert a.error is None and b.error is None and c.error is None, (a.error, c.error)
    assert a.text and _words(a.text) == _words(b.text or "")
    assert a.completion_tokens > 0 and a.completion_tokens == b.completion_tokens
    assert c.text and _words(c.text) != _words(a.text)  # the text does depend on the request: not a constant
