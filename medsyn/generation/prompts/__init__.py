"""Prompt templates: JSON files in this package rendered with LangChain ``ChatPromptTemplate``.

A template file holds ``name``, ``language``, ``description``, ``source`` and ``messages`` (a list of
``[role, text]`` pairs, role ``system`` or ``user``). Texts use Python ``str.format`` placeholders only
(``template_format="f-string"``, never Jinja), and a placeholder must be one of :data:`VARIABLES`: a template from an
untrusted file can therefore not reach attributes, indexes or code. Literal braces are written ``{{`` / ``}}``.

A template is either a *chat* prompt (the default: system + user messages for instruction-tuned models such as
GPT-4) or a *completion* prompt (``"mode": "completion"``: one text that a base model continues, e.g. few-shot).
A few-shot template names how many real example notes it shows (``"shots": K``), how each is written
(``"shot_format"``, placeholders ``{example}``, ``{example_cues}`` and ``{example_symptoms}``) and where the shots go
(``{examples}`` in the message); ``"stop"`` lists the stop sequences that end a note.

The content hash (sha256 over the canonical JSON of the messages, plus the few-shot and completion fields when a
template has them) identifies a template in provenance: editing the description does not change it, editing a
message, the shot format or the stop sequences does.

>>> t = load_template("paper_ru")
>>> t.name, len(t.content_hash)
('paper_ru', 64)
>>> from medsyn.sampling.samples import Sample
>>> s = Sample(id="s1", index=0, strategy="paper", seed=1, code="M54.5", category="M54",
...            symptoms=["боль в пояснице", "скованность"], symptom_iris=["x", "y"], example_text="Боли в спине.")
>>> msgs = t.render(s)
>>> [m["role"] for m in msgs], "боль в пояснице; скованность" in msgs[1]["content"]
(['system', 'user'], True)
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medsyn.errors import InputError
from medsyn.sampling.samples import Sample

if TYPE_CHECKING:
    from langchain_core.prompts import ChatPromptTemplate

DEFAULT_TEMPLATE = "paper_ru"

VARIABLES: dict[str, str] = {
    "example": "text of the real example note (a generic opening when the sample has none)",
    "symptoms": "sampled symptoms joined by '; ' (the paper's format)",
    "symptoms_comma": "sampled symptoms joined by ', ', lower case (the KG-prior prompts' format)",
    "code": "the sampled ICD-10 code",
    "category": "its 3-character category",
    "disease": "the disease name (empty when unknown)",
    "patient": "demographics as a noun phrase, e.g. 'женатый некурящий мужчина 45 лет'",
    "conj": "relative pronoun agreeing with the patient's sex ('который' / 'которая')",
    "age": "patient age in years",
    "sex": "patient sex ('male' / 'female')",
    "examples": "the few-shot block: each example note of the sample written with the template's shot_format",
}
"""The only placeholders a template may use."""

SHOT_VARIABLES: dict[str, str] = {
    "example": "text of one real example note",
    "example_cues": "2-3 short phrases of that note joined by '; ' (shows the model what a symptom list looks like)",
    "example_symptoms": "the graph symptoms of the sample's category that the note states, joined by '; ' (found by "
    "the lemma matcher when the examples were chosen; the note's cues when it states none)",
}
"""The only placeholders of a ``shot_format``."""

MODES = ("chat", "completion")

_ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "ai": "assistant"}
_NEEDS_DEMOGRAPHICS = frozenset({"patient", "conj", "age", "sex"})

# The authors' fallback example for categories without a real note (scripts/taskgen/make_taskgen.py).
_GENERIC_EXAMPLE = {"ru": "Пациент обратился с жалобами.", "en": "The patient presented with complaints."}


@dataclass(frozen=True)
class PromptTemplate:
    """A chat prompt: ordered (role, text) messages plus metadata."""

    name: str
    language: str
    messages: tuple[tuple[str, str], ...]
    description: str = ""
    source: str = ""
    path: str | None = None
    variables: frozenset[str] = field(default=frozenset())
    mode: str = "chat"
    """``chat``: messages for a chat model; ``completion``: the user text alone, continued by a base model."""
    shots: int = 0
    """How many real example notes of the sampled code a few-shot prompt shows (0: not few-shot)."""
    shot_format: str = ""
    stop: tuple[str, ...] = ()
    """Stop sequences recommended for this prompt (the backend's own stop applies when empty)."""

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of what shapes the request (messages, and the few-shot fields)."""
        extra = {}
        if self.mode != "chat" or self.shots or self.shot_format or self.stop:
            extra = {"mode": self.mode, "shots": self.shots, "shot_format": self.shot_format, "stop": list(self.stop)}
        return _messages_hash(self.messages, extra)

    @property
    def shows_symptoms(self) -> bool:
        """Its shots list the graph symptoms each example states: the examples must be chosen with the matcher."""
        return "{example_symptoms}" in self.shot_format

    @property
    def needs_demographics(self) -> bool:
        return bool(self.variables & _NEEDS_DEMOGRAPHICS)

    def as_langchain(self) -> ChatPromptTemplate:
        """The LangChain ``ChatPromptTemplate`` (f-string format) of this template."""
        return _chat_template(self.messages)

    def check_sample(self, sample: Sample) -> None:
        """Raise InputError when the sample lacks a field this template needs."""
        if self.needs_demographics and not sample.demographics:
            raise InputError(f"template {self.name!r} needs demographics, sample {sample.id} has none")

    def variables_for(self, sample: Sample, *, redact: bool = False) -> dict[str, str]:
        """The placeholder values of a sample (only those the template uses).

        ``redact``: every real example note, and the cues drawn from it, stands as :func:`example_marker` of its
        id, so the prompt can be stored and shared without the hospital's notes (the graph gives them back).
        """
        values = {k: v for k, v in sample_variables(sample, self.language).items() if k in self.variables}
        shown = sample_examples(sample)[: self.shots or None]
        if redact and "example" in values and sample.example_text:
            values["example"] = example_marker(sample.example_id or (shown[0][0] if shown else ""))
        if "examples" in self.variables:
            listed = example_symptoms(sample)
            values["examples"] = "".join(
                self._shot(i, text, listed[n] if n < len(listed) else None, redact) for n, (i, text) in enumerate(shown)
            )
        return values

    def _shot(self, note_id: str, text: str, symptoms: list[str] | None, redact: bool) -> str:
        """One shot. Its graph symptoms are vocabulary labels, not the hospital's words, so they stay in a redacted
        prompt; a note that states none shows its cues instead (redacted like them)."""
        cues = example_marker(note_id, "cues") if redact else "; ".join(example_cues(text))
        return self.shot_format.format(
            example=example_marker(note_id) if redact else text,
            example_cues=cues,
            example_symptoms="; ".join(symptoms) if symptoms else cues,
        )

    def render_text(self, sample: Sample, *, redact: bool = False) -> str:
        """The prompt of a completion template as one text (the rendered messages joined by a blank line)."""
        return "\n\n".join(m["content"] for m in self.render(sample, redact=redact))

    def render(self, sample: Sample, *, redact: bool = False) -> list[dict[str, str]]:
        """OpenAI-style chat messages ``[{"role", "content"}]`` for one sample (``redact``: see
        :meth:`variables_for`).

        The same messages as :meth:`as_langchain`'s ``format_messages`` (tests/test_prompts.py compares them on
        every packaged template), formatted with ``str.format`` directly: placeholders are plain names
        (:func:`_placeholders`), where LangChain's f-string format is ``str.format`` too, and its message objects
        cost ~0.3 ms a render, paid on every attempt of a run."""
        self.check_sample(sample)
        values = self.variables_for(sample, redact=redact)
        return [{"role": role, "content": text.format(**values)} for role, text in self.messages]


def _messages_hash(messages: tuple[tuple[str, str], ...], extra: dict[str, Any] | None = None) -> str:
    # Templates without the few-shot fields keep the hash they always had (notes already cite it).
    doc: Any = [list(m) for m in messages]
    if extra:
        doc = {"messages": doc, **extra}
    canon = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


@lru_cache(maxsize=64)
def _chat_template(messages: tuple[tuple[str, str], ...]) -> ChatPromptTemplate:
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages(list(messages), template_format="f-string")


def _placeholders(text: str, where: str, allowed: dict[str, str] = VARIABLES) -> set[str]:
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise InputError(f"{where}: bad placeholder syntax ({exc}); write literal braces as {{{{ and }}}}") from None
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if name not in allowed or spec or conv:
            raise InputError(
                f"{where}: placeholder {{{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}}} is not "
                f"allowed; use one of {', '.join(sorted(allowed))}"
            )
        names.add(name)
    return names


def parse_template(data: Any, *, where: str) -> PromptTemplate:
    """Validate the decoded JSON of a template file."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: a template is a JSON object")
    msgs = data.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise InputError(f"{where}: 'messages' must be a non-empty list of [role, text] pairs")
    messages: list[tuple[str, str]] = []
    variables: set[str] = set()
    for i, m in enumerate(msgs):
        if not (isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m)):
            raise InputError(f"{where}: messages[{i}] must be [role, text]")
        role, text = m
        if role not in _ROLES:
            raise InputError(f"{where}: messages[{i}] has unknown role {role!r}; use system or user")
        variables |= _placeholders(text, f"{where}: messages[{i}]")
        messages.append((_ROLES[role], text))
    if not any(r == "user" for r, _ in messages):
        raise InputError(f"{where}: a template needs a user message")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: 'name' must be a non-empty string")
    language = data.get("language", "ru")
    if language not in _GENERIC_EXAMPLE:
        raise InputError(f"{where}: 'language' must be one of {', '.join(_GENERIC_EXAMPLE)}")
    mode = data.get("mode", "chat")
    if mode not in MODES:
        raise InputError(f"{where}: 'mode' must be one of {', '.join(MODES)}")
    if mode == "completion" and any(r != "user" for r, _ in messages):
        raise InputError(f"{where}: a completion template has user messages only (a base model has no roles)")
    shots = data.get("shots", 0)
    if not isinstance(shots, int) or isinstance(shots, bool) or not 0 <= shots <= 32:
        raise InputError(f"{where}: 'shots' must be a whole number from 0 to 32")
    shot_format = data.get("shot_format", "")
    if not isinstance(shot_format, str):
        raise InputError(f"{where}: 'shot_format' must be a string")
    _placeholders(shot_format, f"{where}: shot_format", SHOT_VARIABLES)
    if ("examples" in variables) != bool(shots and shot_format):
        raise InputError(f"{where}: a few-shot template needs all of 'shots' > 0, 'shot_format' and {{examples}}")
    stop = data.get("stop", [])
    if not (isinstance(stop, list) and all(isinstance(x, str) and x for x in stop)):
        raise InputError(f"{where}: 'stop' must be a list of non-empty strings")
    return PromptTemplate(
        name=name,
        language=language,
        messages=tuple(messages),
        description=str(data.get("description", "")),
        source=str(data.get("source", "")),
        path=where,
        variables=frozenset(variables),
        mode=mode,
        shots=shots,
        shot_format=shot_format,
        stop=tuple(stop),
    )


def list_templates() -> list[str]:
    """Names of the templates shipped in the package."""
    pkg = resources.files(__name__)
    return sorted(p.name[:-5] for p in pkg.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=32)
def load_template(name_or_path: str = DEFAULT_TEMPLATE) -> PromptTemplate:
    """A packaged template by name (``paper_ru``, ``demographics_ru``, ``paper_en``) or a JSON file path."""
    if name_or_path in list_templates():
        res = resources.files(__name__).joinpath(name_or_path + ".json")
        text, where = res.read_text(encoding="utf-8"), f"template {name_or_path}"
    else:
        p = Path(name_or_path)
        if not p.is_file():
            raise InputError(
                f"unknown template {name_or_path!r}: not a packaged template ({', '.join(list_templates())}) nor a file"
            )
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read template: {exc}", path=p) from None
        where = str(p)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
    return parse_template(data, where=where)


# ------------------------------------------------------------------------------------------ sample -> variables
_MARITAL_RU = {
    ("male", True): "женатый",
    ("male", False): "неженатый",
    ("female", True): "замужняя",
    ("female", False): "незамужняя",
}


def _married(value: Any) -> bool | None:
    if isinstance(value, bool | int):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in {"married", "женат", "замужем", "женатый", "замужняя", "1", "true"}:
            return True
        if v in {"single", "divorced", "widowed", "unmarried", "не женат", "не замужем", "0", "false"}:
            return False
    return None


def _years_ru(age: int) -> str:
    if age % 10 == 1 and age % 100 != 11:
        return "год"
    if age % 10 in (2, 3, 4) and age % 100 not in (12, 13, 14):
        return "года"
    return "лет"


def patient_phrase(demographics: dict[str, Any], language: str = "ru") -> tuple[str, str]:
    """(noun phrase, relative pronoun) describing a patient, e.g. ('женатый курящий мужчина 45 лет', 'который').

    >>> patient_phrase({"age": 21, "sex": "female", "marital_status": "single", "smoking": False})
    ('незамужняя некурящая женщина 21 год', 'которая')
    """
    sex = str(demographics.get("sex", "")).lower()
    female = sex in {"female", "f", "женский", "ж"}
    age = demographics.get("age")
    married = _married(demographics.get("marital_status"))
    smoking = demographics.get("smoking")
    if language == "en":
        parts = []
        if married is not None:
            parts.append("married" if married else "unmarried")
        if smoking is not None:
            parts.append("smoking" if smoking else "non-smoking")
        parts.append("woman" if female else "man")
        if isinstance(age, int):
            parts.append(f"aged {age}")
        return " ".join(parts), "who"
    parts = []
    if married is not None:
        parts.append(_MARITAL_RU["female" if female else "male", married])
    elif demographics.get("marital_status"):
        parts.append(str(demographics["marital_status"]))
    if smoking is not None:
        parts.append(("курящая" if smoking else "некурящая") if female else ("курящий" if smoking else "некурящий"))
    parts.append("женщина" if female else "мужчина")
    if isinstance(age, int):
        parts.append(f"{age} {_years_ru(age)}")
    return " ".join(parts), ("которая" if female else "который")


def example_marker(note_id: str, part: str = "example") -> str:
    """What a redacted prompt shows instead of a real note (``part="example"``) or of its cues (``"cues"``).

    >>> example_marker("q43dfecc"), example_marker("q43dfecc", "cues")
    ('⟨example:q43dfecc⟩', '⟨cues:q43dfecc⟩')
    """
    return f"⟨{part}:{note_id or '?'}⟩"


def messages_hash(messages: list[dict[str, str]]) -> str:
    """sha256 of the canonical JSON of the messages actually sent: with the redacted prompt and the graph's notes
    an auditor re-renders the prompt and compares it with this."""
    canon = json.dumps(messages, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def sample_examples(sample: Sample) -> list[tuple[str, str]]:
    """(id, text) of the real example notes of a sample: its own example first, then the few-shot extras."""
    extra = sample.extra.get("examples")
    if extra:
        return [(str(ex.get("id") or ""), str(ex["text"])) for ex in extra]
    return [(sample.example_id or "", sample.example_text)] if sample.example_text else []


def example_symptoms(sample: Sample) -> list[list[str] | None]:
    """Per example of :func:`sample_examples`: the graph symptoms it states (None when they were not looked up)."""
    extra = sample.extra.get("examples") or []
    return [[str(x) for x in ex["symptoms"]] if isinstance(ex.get("symptoms"), list) else None for ex in extra]


_CUE_SPLIT = re.compile(r"[,.;:!?()\n]+")
_CUE_LEAD = re.compile(r"^(?:жалобы|жалоб|жалуется|на|с|по|при)\b\s*", re.IGNORECASE)


def example_cues(text: str, k: int = 3) -> list[str]:
    """Up to ``k`` short phrases of a note (1-6 words each), chosen by a stable hash and kept in note order.

    In a few-shot prompt they stand before their note as its "symptom list", so a base model sees that a note
    uses the listed items; the choice depends only on the text, so the same note always gets the same cues.

    >>> example_cues("Жалобы на боль в горле, температуру 38, слабость в течение 3 дней.")
    ['боль в горле', 'температуру 38', 'слабость в течение 3 дней']
    """
    parts = []
    for raw in _CUE_SPLIT.split(text):
        cue = raw.strip(" -–—*\t").lower()
        while True:
            shorter = _CUE_LEAD.sub("", cue).strip()
            if shorter == cue:
                break
            cue = shorter
        if cue and 1 <= len(cue.split()) <= 6:
            parts.append(cue)
    if len(parts) <= k:
        return parts
    keep = sorted(range(len(parts)), key=lambda i: hashlib.sha256(parts[i].encode()).digest())[:k]
    return [parts[i] for i in sorted(keep)]


def sample_variables(sample: Sample, language: str = "ru") -> dict[str, str]:
    """Every placeholder value of a sample; demographic ones only when the sample has demographics."""
    example = (sample.example_text or "").strip() or _GENERIC_EXAMPLE[language]
    out = {
        "example": example,
        "symptoms": "; ".join(sample.symptoms),
        "symptoms_comma": ", ".join(sample.symptoms).lower(),
        "code": sample.code,
        "category": sample.category,
        "disease": sample.disease_name or "",
    }
    if sample.demographics:
        patient, conj = patient_phrase(sample.demographics, language)
        out.update(
            patient=patient,
            conj=conj,
            age=str(sample.demographics.get("age", "")),
            sex=str(sample.demographics.get("sex", "")),
        )
    return out
