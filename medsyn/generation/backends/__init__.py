"""Generation backends, pluggable by name: ``openai`` (any OpenAI-compatible endpoint), ``local`` (transformers)
and ``llamacpp`` (GGUF models in llama.cpp, in-process).

A backend turns chat requests into completions. It never parses or judges the text (that is
:mod:`medsyn.generation.replies` and :mod:`medsyn.generation.filter`); it reports transport failures that survived its
retries as ``Completion.error``, and raises :class:`~medsyn.errors.MedsynError` only for failures that doom the whole
run (bad key, unknown model).

>>> sorted(available_backends())
['llamacpp', 'local', 'openai']
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Protocol, runtime_checkable

from medsyn.errors import InputError


@dataclass(frozen=True)
class ChatRequest:
    key: str
    """Caller's id of the request (the note id)."""
    messages: list[dict[str, str]]
    seed: int = 0
    temperature: float = 1.0
    max_tokens: int = 512
    prompt: str | None = None
    """A completion prompt (raw text a base model continues); when set, backends send it instead of the messages
    (``/v1/completions`` for the OpenAI API) and ``messages`` only records it."""
    stop: tuple[str, ...] | None = None
    """Stop sequences of this request (the template's); None: the backend's own default."""


@dataclass
class Completion:
    text: str | None = None
    finish_reason: str | None = None
    refusal: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    error: str | None = None
    """Set when no reply came back (after retries): the request is a failure, not a note."""
    permanent: bool = False
    """With ``error``: the same request would fail again (a prompt too long, an HTTP 400), so a resumed run counts
    it as an attempt; other errors (transport failures) are tried again on resume."""
    retries: int = 0
    model: str | None = None
    """The model name the server reported."""
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    name: str
    model: str
    adapter_hash: str | None
    batch_size: int
    """How many requests one :meth:`complete` call takes (1 for HTTP backends)."""
    max_concurrency: int
    """How many :meth:`complete` calls may run at once."""

    async def complete(self, requests: Sequence[ChatRequest]) -> list[Completion]: ...

    def describe(self) -> dict[str, Any]:
        """Backend parameters recorded in the run's provenance (never secrets)."""

    async def aclose(self) -> None: ...


_REGISTRY: dict[str, str | Callable[..., Backend]] = {
    "openai": "medsyn.generation.backends.openai_backend:OpenAIBackend",
    "local": "medsyn.generation.backends.local_backend:LocalBackend",
    "llamacpp": "medsyn.generation.backends.llamacpp_backend:LlamaCppBackend",
}


def available_backends() -> list[str]:
    return sorted(_REGISTRY)


def register_backend(name: str, factory: str | Callable[..., Backend]) -> None:
    """Register a backend factory (a callable or ``"module:attr"``) under ``name``."""
    _REGISTRY[name] = factory


def get_backend(backend: str | Backend | Callable[..., Backend], **options: Any) -> Backend:
    """A backend from a registered name, a factory (class) or an instance (returned as is)."""
    if isinstance(backend, str):
        try:
            factory = _REGISTRY[backend]
        except KeyError:
            raise InputError(
                f"unknown backend {backend!r}; expected one of {', '.join(available_backends())}"
            ) from None
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(import_module(module), attr)
        check_options(backend, factory, options)
        return factory(**options)
    if isinstance(backend, Backend):
        return backend
    check_options(getattr(backend, "name", getattr(backend, "__name__", "custom")), backend, options)
    return backend(**options)


def check_options(name: str, factory: Callable[..., Backend], options: dict[str, Any]) -> None:
    """Refuse an option the backend does not take: a misspelt one would otherwise keep its default silently."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature: let the call itself complain
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = sorted(k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
    for key in options:
        if key not in valid:
            near = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; it takes {', '.join(valid)}"
            raise InputError(f"the {name} backend has no option {key!r}{hint}")
