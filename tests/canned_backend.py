"""A backend defined outside medsyn, as a user adds one: one class in one file, registered by one line.

It answers every request with :func:`medsyn.testing.openai_server.canned_note` (a Russian note naming the prompt's
symptoms), so a run with it is deterministic and passes the quality filter. ``tests/test_backend_plugins.py`` uses it
through :func:`medsyn.generation.backends.register_backend` and as the ``medsyn.backends`` entry point of a plugin
distribution built in a temporary folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medsyn.errors import ParameterError
from medsyn.generation.backends import ChatRequest, Completion
from medsyn.testing.openai_server import canned_note


class CannedBackend:
    """Canned Russian notes naming the prompt's symptoms (deterministic; for tests).

    model: the name recorded in provenance.
    signature: a sentence added to every note.
    repeat: how many times the signature is added.
    """

    name = "canned"
    batch_size = 1
    max_concurrency = 1
    default_template = "paper_ru"

    def __init__(self, *, model: str = "canned-1", signature: str = "", repeat: int = 1) -> None:
        if repeat < 0:
            raise ParameterError(f"{{repeat}} must be >= 0, got {repeat}")
        self.model = model
        self.adapter_hash: str | None = None
        self.signature = signature
        self.repeat = repeat

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "signature": self.signature, "repeat": self.repeat}

    async def complete(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        out = []
        for r in requests:
            text = canned_note(r.messages) + (f" {self.signature}" * self.repeat if self.signature else "")
            out.append(Completion(text=text, finish_reason="stop", prompt_tokens=10, completion_tokens=50))
        return out

    async def aclose(self) -> None:
        return None
