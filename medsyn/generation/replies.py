"""Reply parsing, kept apart from prompt building: model output -> note text or a classified failure.

A reply is a failure, never a note, when it is empty, cut off by the token limit (``finish_reason == "length"``),
blocked by a content filter, or a refusal ("I can't help with that", "Извините, я не могу ...").

>>> parse_reply("  Жалобы на головную боль.  ").text
'Жалобы на головную боль.'
>>> parse_reply("Извините, но я не могу помочь с этим запросом.").status
'refused'
>>> parse_reply("Жалобы на", finish_reason="length").status
'truncated'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "empty", "truncated", "refused", "filtered"]

# A refusal is short and opens with an apology or a statement of inability; long notes that merely contain
# "не может" somewhere are notes.
_REFUSAL = re.compile(
    r"^\W*(?:"
    r"(?:извините|простите|к сожалению)[,!.]?\s*(?:но\s+)?(?:я\s+)?(?:не\s+могу|не\s+в\s+состоянии|не\s+имею)"
    r"|я\s+не\s+(?:могу|в\s+состоянии)\s+(?:помочь|выполнить|написать|предоставить|составить)"
    r"|как\s+(?:ии|языковая\s+модель|искусственный\s+интеллект)"
    r"|(?:i'?m|i\s+am)\s+(?:sorry|unable|not\s+able)"
    r"|sorry,?\s+(?:but\s+)?i\s+(?:can(?:'|no)t|am\s+unable)"
    r"|i\s+(?:can(?:'|no)t|won'?t|am\s+unable\s+to)\s+(?:help|assist|provide|write|comply|create)"
    r"|as\s+an\s+ai\b"
    r")",
    re.IGNORECASE,
)
_REFUSAL_MAX_CHARS = 400
_FENCE = re.compile(r"^```[a-zA-Z]*\n(.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class Reply:
    status: Status
    text: str
    """The cleaned note text (also kept for failures, for the failure log)."""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def clean_text(raw: str) -> str:
    """Strip whitespace, a wrapping code fence and wrapping quotes."""
    t = raw.strip()
    m = _FENCE.match(t)
    if m:
        t = m.group(1).strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'«":
        t = t[1:-1].strip()
    if len(t) >= 2 and t[0] == "«" and t[-1] == "»":
        t = t[1:-1].strip()
    return t


def is_refusal(text: str) -> bool:
    return len(text) <= _REFUSAL_MAX_CHARS and bool(_REFUSAL.match(text))


def parse_reply(raw: str | None, *, finish_reason: str | None = None, refusal: str | None = None) -> Reply:
    """Classify one model reply. ``refusal`` is the API's explicit refusal field, when it sends one."""
    text = clean_text(raw or "")
    if refusal:
        return Reply("refused", text or refusal, f"model refused: {refusal[:200]}")
    if finish_reason == "content_filter":
        return Reply("filtered", text, "blocked by the provider's content filter")
    if not text:
        return Reply("empty", "", "empty reply")
    if finish_reason == "length":
        return Reply("truncated", text, "reply cut off at the token limit (finish_reason=length)")
    if is_refusal(text):
        return Reply("refused", text, "reply is a refusal")
    return Reply("ok", text)
