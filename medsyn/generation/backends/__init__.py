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
        return factory(**options)
    if isinstance(backend, Backend):
        return backend
    return backend(**options)
