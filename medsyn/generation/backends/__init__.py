"""Generation backends, pluggable by name: ``openai`` (any OpenAI-compatible endpoint), ``local`` (transformers)
and ``llamacpp`` (GGUF models in llama.cpp, in-process); more through :func:`register_backend` or a distribution's
``medsyn.backends`` entry point (:mod:`medsyn.plugins`).

A backend is one class: its constructor's keyword parameters are its options (typed, documented as ``name: text``
lines of its docstring, read by :func:`medsyn.component_options.declared_options`), its ``default_template`` is the
prompt it runs without ``--template``, and its ``describe()`` is what provenance records of it. Adding one is its
module plus one line in ``_REGISTRY`` (``tests/test_backend_plugins.py`` shows both ways).

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Protocol, runtime_checkable

from medsyn.component_options import (
    OptionSpec,
    check_options,
    declared_options,
    parse_assignments,
    takes_any_option,
)
from medsyn.errors import InputError
from medsyn.plugins import entry_point_components, plugin_distribution


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


# A backend class may also set ``default_template``: the prompt template it is run with when none is asked for.


_REGISTRY: dict[str, str | Callable[..., Backend]] = {
    "openai": "medsyn.generation.backends.openai_backend:OpenAIBackend",
    "local": "medsyn.generation.backends.local_backend:LocalBackend",
    "llamacpp": "medsyn.generation.backends.llamacpp_backend:LlamaCppBackend",
}
"""Built-in backends (one line each); third-party ones come from the ``medsyn.backends`` entry points."""
_BUILT_IN = frozenset(_REGISTRY)

ENTRY_POINTS = "medsyn.backends"


def available_backends() -> list[str]:
    """Registered backends and those installed distributions declare (their modules are not imported)."""
    return sorted({*_REGISTRY, *entry_point_components(ENTRY_POINTS)})


def register_backend(name: str, factory: str | Callable[..., Backend]) -> None:
    """Register a backend factory (a callable or ``"module:attr"``) under ``name``; it wins over a plugin."""
    _REGISTRY[name] = factory


def backend_factory(name: str) -> Callable[..., Backend]:
    """The class (or factory) registered as ``name``, importing its module now."""
    factory = _REGISTRY.get(name)
    if factory is None:
        plugin = entry_point_components(ENTRY_POINTS).get(name)
        if plugin is None:
            known = available_backends()
            near = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise InputError(f"unknown backend {name!r}; {hint}expected one of {', '.join(known)}")
        factory = plugin()
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(import_module(module), attr)
    if not callable(factory):
        raise InputError(f"backend {name!r} is registered as {factory!r}, which is not a class or factory")
    return factory


def backend_options(backend: str | Callable[..., Backend]) -> dict[str, OptionSpec]:
    """The options a backend declares (its constructor's keyword parameters, typed and documented)."""
    return declared_options(backend_factory(backend) if isinstance(backend, str) else backend)


def default_template(backend: str | Callable[..., Backend] | Backend) -> str | None:
    """The prompt template a backend is run with when none is asked for (its ``default_template``)."""
    owner = backend_factory(backend) if isinstance(backend, str) else backend
    return getattr(owner, "default_template", None)


def get_backend(backend: str | Backend | Callable[..., Backend], **options: Any) -> Backend:
    """A backend from a registered name, a factory (class) or an instance (returned as is).

    ``options`` are the backend's declared options (:func:`backend_options`); text values are read by their
    declared types, and an option the backend does not declare is refused naming the nearest one."""
    if isinstance(backend, Backend) and not isinstance(backend, type):
        return backend
    name = backend if isinstance(backend, str) else getattr(backend, "name", getattr(backend, "__name__", "custom"))
    factory = backend_factory(backend) if isinstance(backend, str) else backend
    if not takes_any_option(factory):
        declared = declared_options(factory)
        check_options(options, declared, what=f"the {name} backend")
        options = {k: declared[k].coerce(v) for k, v in options.items()}
    return factory(**options)


def configured_backend(
    name: str,
    *,
    assignments: Sequence[str] = (),
    options: Mapping[str, Any] | None = None,
    shared: Mapping[str, Any] | None = None,
) -> Backend:
    """The backend ``name`` built from text ``key=value`` ``assignments`` (read by the declared types), typed
    ``options``, and run-wide ``shared`` values (a run's seed, its max_tokens) given to a backend that declares them.

    An option set twice (an assignment and a typed option) or not declared is refused in one line."""
    declared = backend_options(name)
    what = f"the {name} backend"
    chosen = parse_assignments(assignments, declared, what=what)
    for key, value in (options or {}).items():
        if key in chosen:
            raise InputError(f"{what}: option {key!r} is given twice (--option {key}=... and its own flag)")
        chosen[key] = value
    for key, value in (shared or {}).items():
        if key in declared and value is not None:
            chosen.setdefault(key, value)
    return get_backend(name, **chosen)


@dataclass(frozen=True)
class BackendSpec:
    """How to build a backend with :func:`configured_backend` (its arguments), for a process that builds its own:
    a backend holds connections or a model, so an engine that runs it elsewhere (Ray workers) ships this instead."""

    name: str
    assignments: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    shared: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Backend:
        return configured_backend(
            self.name, assignments=self.assignments, options=dict(self.options), shared=dict(self.shared)
        )


def backend_catalog() -> list[dict[str, Any]]:
    """Every available backend with where it comes from, its default template and its declared options; a plugin
    that cannot be loaded is listed with its one-line ``error`` instead."""
    plugins = entry_point_components(ENTRY_POINTS)
    rows: list[dict[str, Any]] = []
    for name in available_backends():
        origin = "built-in" if name in _BUILT_IN else "registered" if name in _REGISTRY else "plugin"
        if origin == "plugin":
            origin = f"plugin ({plugin_distribution(ENTRY_POINTS, name) or 'unknown distribution'})"
        try:
            factory = backend_factory(name) if name in _REGISTRY else plugins[name]()
        except InputError as exc:
            rows.append({"name": name, "origin": origin, "error": str(exc)})
            continue
        doc = (inspect.getdoc(factory) or "").strip().splitlines()
        rows.append(
            {
                "name": name,
                "origin": origin,
                "summary": doc[0] if doc else "",
                "default_template": getattr(factory, "default_template", None),
                "options": [o.to_dict() for o in declared_options(factory).values()],
            }
        )
    return rows
