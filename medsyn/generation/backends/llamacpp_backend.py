"""The ``llamacpp`` backend: GGUF models run by llama.cpp in this process (the ``xllamacpp`` wheel, CPU build).

llama.cpp runs quantized GGUF weights natively, where transformers first de-quantizes them to float32; on a CPU it
decodes faster (``benchmarks/local_generation.py`` measures both on the same prompts). The engine is llama.cpp's own
server code (``xllamacpp.Server``) called in-process through its OpenAI-style handlers, so completion prompts and
chat messages get the same treatment as from a llama.cpp server. ``parallel`` slots run that many requests at once
(continuous batching); ``threads`` is the CPU threads per decode step (on a busy 2-core machine 1 is fastest).

llama.cpp's server code always opens an HTTP listener beside its in-process handlers. Left as it comes, that is
a TCP port on 127.0.0.1 where anyone on the machine gets completions, reads ``/slots`` and holds the only slot; here
it is a Unix socket made in a private (0700) folder and unlinked as soon as the engine is up, so nothing can connect
to it, and every request on it would need a random key this process never hands out (:func:`_private_listener`).

A prompt longer than ``max_input_tokens`` is refused before any token is generated: the request is first sent with
``max_tokens=0``, which only evaluates the prompt (and counts its tokens); the generation that follows reuses that
evaluation from the slot's cache, so the check costs no second pass. A slot's context is ``max_input_tokens +
max_tokens``, so a request may not ask for more than ``max_tokens``.

That reuse evaluates the prompt's last token alone, where a llama.cpp server given the request once evaluates it with
the rest of the prompt; the two differ in the logits' last bits, and a near tie (greedy decoding included) can then
pick another token. ``check_prompt=false`` sends each request once, as a server does: the notes then equal those of
a llama.cpp server (``--backend openai --base-url``) with the same engine settings for the same seed
(``tests/test_llama_server.py``); a prompt longer than the slot's context is still refused, by llama.cpp, but one
between ``max_input_tokens`` and the context is generated.

Sampling is seeded per request (``ChatRequest.seed``), so the same prompt and seed give the same note.
A LoRA adapter trained by ``medsyn finetune`` on a GGUF base (``--adapter DIR``) is converted once to a GGUF LoRA file
(:mod:`medsyn.training.gguf_lora`) and applied by llama.cpp, so a fine-tuned model generates at llama.cpp's speed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medsyn.errors import InputError
from medsyn.generation.backends import ChatRequest, Completion

DEFAULT_MODEL = "gemma3"
PROMPT_CACHE_MIB = 0


def engine_params(
    xllamacpp: Any,
    path: Path,
    *,
    max_input_tokens: int,
    max_tokens: int,
    parallel: int,
    threads: int,
    lora: Path | None = None,
) -> Any:
    """llama.cpp's engine settings for ``path`` (with the GGUF LoRA file ``lora`` applied at scale 1): one home for
    the in-process backend and the test's real server (:mod:`medsyn.testing.llama_server`), so both run the same
    engine."""
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    if lora is not None:
        info = xllamacpp.CommonAdapterLoraInfo()
        info.path, info.scale = str(lora), 1.0
        params.lora_adapters = [info]
    # One slot's context holds the prompt and the reply; the server splits n_ctx over its slots.
    params.n_ctx = (max_input_tokens + max_tokens) * parallel
    params.n_parallel = parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.warmup = False
    params.verbosity = -1
    # llama.cpp's server keeps finished prompts' KV states in host memory (8 GiB by default): with distinct
    # few-shot prompts a long run grew ~6 MB an attempt until that cap. A retry of the same prompt still
    # reuses its slot's own cache, which is all generation here gains from caching.
    params.cache_ram_mib = PROMPT_CACHE_MIB
    return params


class LlamaCppBackend:
    """A GGUF model run by llama.cpp in this process.

    model: a .gguf file or a packaged model name (gemma3).
    adapter: a ``medsyn finetune`` adapter folder trained on this GGUF base (converted to a GGUF LoRA file once).
    threads: CPU threads per decode step (on a busy 2-core machine 1 is fastest).
    parallel: requests decoded at once (llama.cpp slots, continuous batching).
    max_input_tokens: longer prompts are recorded as failures before any token is generated.
    max_tokens: most tokens a request may ask for (a slot's context is max_input_tokens + max_tokens; the CLI
        passes --max-tokens).
    stop: stop sequences of requests that bring none (default: a blank line ends the note).
    check_prompt: measure the prompt before generating (refuses one over max_input_tokens); false: one pass per
        request, as a llama.cpp server computes it (the same notes as that server for the same seed).
    """

    name = "llamacpp"
    batch_size = 1
    default_template = "paper_fewshot_ru"
    """The few-shot completion prompt: the packaged small models are base models."""

    def __init__(
        self,
        *,
        model: str | None = None,
        adapter: str | Path | None = None,
        threads: int = 1,
        parallel: int = 1,
        max_input_tokens: int = 2048,
        max_tokens: int = 1024,
        stop: Sequence[str] | None = ("\n\n",),
        check_prompt: bool = True,
    ) -> None:
        if threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        if parallel < 1:
            raise InputError(f"parallel must be >= 1, got {parallel}")
        if max_tokens < 1 or max_input_tokens < 1:
            raise InputError(f"max_tokens and max_input_tokens must be >= 1, got {max_tokens}, {max_input_tokens}")
        from medsyn.training.models import base_name

        self.spec = model or DEFAULT_MODEL
        self.model = base_name(self.spec)
        self.adapter = Path(adapter) if adapter is not None else None
        self.adapter_hash: str | None = None
        self._lora: Path | None = None
        if self.adapter is not None:
            from medsyn.training.gguf_lora import gguf_adapter
            from medsyn.training.models import adapter_hash

            # Converted before any request: a wrong adapter is a one-line error, not a failed run.
            self.adapter_hash = adapter_hash(self.adapter)
            self._lora = gguf_adapter(self.adapter, self.spec, digest=self.adapter_hash)
        self.threads = threads
        self.parallel = parallel
        self.max_concurrency = parallel
        self.max_input_tokens = max_input_tokens
        self.max_tokens = max_tokens
        self.stop = tuple(x for x in (stop or ()) if x)
        self.check_prompt = check_prompt
        self._server: Any = None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            **({"adapter": str(self.adapter), "adapter_hash": self.adapter_hash} if self.adapter else {}),
            "engine": _engine_version(),
            "threads": self.threads,
            "parallel": self.parallel,
            "max_input_tokens": self.max_input_tokens,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
            "check_prompt": self.check_prompt,
            "prompt_cache_mib": PROMPT_CACHE_MIB,
        }

    def _load(self) -> Any:
        if self._server is None:
            from medsyn.training.models import gguf_path

            path = gguf_path(self.spec)
            if path is None:
                raise InputError(f"{self.spec}: the llamacpp backend needs a GGUF model (a .gguf file or gemma3)")
            try:
                import xllamacpp
            except ImportError:
                raise InputError("the llamacpp backend needs the xllamacpp package (pip install xllamacpp)") from None
            params = engine_params(
                xllamacpp, path, max_input_tokens=self.max_input_tokens, max_tokens=self.max_tokens,
                parallel=self.parallel, threads=self.threads, lora=self._lora,
            )  # fmt: skip
            params.endpoint_metrics = True  # read in-process by engine_counts()
            params.endpoint_slots = False
            params.endpoint_props = False
            self._server = _private_listener(xllamacpp, params, path)
        return self._server

    def _body(self, req: ChatRequest) -> dict[str, Any]:
        stop = list(req.stop if req.stop is not None else self.stop)
        body: dict[str, Any] = {
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": 0.95,
            "seed": req.seed,
            "stop": stop,
            "n_probs": 0,
        }
        if req.prompt is not None:
            body["prompt"] = req.prompt
        else:
            body["messages"] = req.messages
        return body

    def _refusal(self, reply: Any) -> Completion | None:
        """A permanent failure for an error reply from the engine; None for a reply with a choice."""
        if isinstance(reply, dict) and "error" not in reply and reply.get("choices"):
            return None
        err = reply.get("error") if isinstance(reply, dict) else reply
        msg = err.get("message") if isinstance(err, dict) else str(err)
        return Completion(error=f"llama.cpp: {' '.join(str(msg).split())[:300]}", permanent=True, model=self.model)

    def generate_one(self, req: ChatRequest) -> Completion:
        """Blocking generation of one request (what :meth:`complete` runs in a worker thread)."""
        if req.max_tokens > self.max_tokens:
            return Completion(
                error=f"max_tokens {req.max_tokens} > the llamacpp backend's max_tokens {self.max_tokens}",
                permanent=True,
                model=self.model,
            )
        server = self._load()
        body = self._body(req)
        handler = server.handle_completions if req.prompt is not None else server.handle_chat_completions
        probe: dict[str, Any] = {}
        if self.check_prompt:
            # Evaluate the prompt alone first: its length is known before any token is generated.
            probe = handler({**body, "max_tokens": 0})
            refused = self._refusal(probe)
            if refused is not None:
                return refused
            prompt_tokens = int((probe.get("usage") or {}).get("prompt_tokens") or 0)
            if prompt_tokens > self.max_input_tokens:
                return Completion(
                    error=f"prompt too long: {prompt_tokens} tokens > max_input_tokens {self.max_input_tokens}",
                    permanent=True,
                    prompt_tokens=prompt_tokens,
                    model=self.model,
                )
        reply = handler(body)
        refused = self._refusal(reply)
        if refused is not None:
            return refused
        choice = reply["choices"][0]
        text = choice.get("text") if req.prompt is not None else (choice.get("message") or {}).get("content")
        usage = reply.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or (probe.get("usage") or {}).get("prompt_tokens") or 0)
        timings = dict(reply.get("timings") or {})
        if "prompt_ms" in timings and probe:  # the prompt was evaluated by the probe; the reply only reused it
            timings["prompt_ms"] += (probe.get("timings") or {}).get("prompt_ms") or 0.0
        return Completion(
            text=text,
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=prompt_tokens,
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=self.model,
            extra={k: timings[k] for k in ("prompt_ms", "predicted_ms") if k in timings},
        )

    def engine_counts(self) -> dict[str, float]:
        """llama.cpp's own counters (``prompt_tokens_total``, ``tokens_predicted_total``, ...), read in-process."""
        counts: dict[str, float] = {}
        for line in str(self._load().handle_metrics()).splitlines():
            name, _, value = line.partition(" ")
            if name.startswith("llamacpp:") and value:
                counts[name.removeprefix("llamacpp:")] = float(value)
        return counts

    async def complete(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        self._load()  # load once, before several worker threads could race to do it
        return [await asyncio.to_thread(self.generate_one, r) for r in requests]

    async def aclose(self) -> None:
        return None


def _private_listener(xllamacpp: Any, params: Any, path: Path) -> Any:
    """The engine with its HTTP listener out of reach of every other process (and of this one).

    llama.cpp's server always binds a listener; a hostname ending in ``.sock`` makes it a Unix socket. The socket is
    made in a folder only this user can enter, every request on it needs a random key that is never kept, and the
    folder is removed once the engine is up, so no path leads to the socket. The in-process handlers do not pass
    through the listener and need no key.
    """
    folder = tempfile.mkdtemp(prefix="medsyn-llama-")  # mode 0700
    params.hostnames = [os.path.join(folder, "engine.sock")]
    params.api_keys = [secrets.token_urlsafe(32)]
    try:
        return xllamacpp.Server(params)
    except Exception as exc:  # the engine reports a bad file as a generic runtime error
        raise InputError(f"{path}: llama.cpp cannot load this model: {exc}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _engine_version() -> str | None:
    try:
        from importlib.metadata import version

        return f"xllamacpp {version('xllamacpp')}"
    except Exception:
        return None
