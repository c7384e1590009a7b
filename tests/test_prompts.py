"""Prompt templates: packaged files, LangChain f-string rendering, hashing, and refusal of unsafe templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medsyn.errors import InputError
from medsyn.generation.prompts import PromptTemplate, list_templates, load_template, patient_phrase
from medsyn.sampling.samples import Sample

# The authors' user prompt (milteam/MedSyn scripts/taskgen/generate_anamneses.py, PROMPT_STRUCTURE).
AUTHORS_USER = (
    "Представь, что являешься врачем с высоким уровнем владения русским языком.\n\n"
    "Внимательно рассмотри исходный анамнез пациента:\n{anamnesis}\n\n"
    "Напиши аналогичный анамнез примерно же объема, как и исходный анамнез, для другого пациента с таким же "
    "заболеванием,\nв котором обязательно замени часть симптомов на перечисленные далее симптомы, используя их всех:\n"
    "{symptoms}.\n\nУбедись, что этот анамнез отличается от исходного и является корректным с медицинской точки зрения."
)


def sample(**kw: object) -> Sample:
    base: dict[str, object] = dict(
        id="s1",
        index=0,
        strategy="paper",
        seed=1,
        code="M54.5",
        category="M54",
        symptoms=["боль в пояснице", "онемение ноги"],
        symptom_iris=["urn:a", "urn:b"],
        example_id="q1",
        example_text="Боли в спине после нагрузки.",
    )
    base.update(kw)
    return Sample(**base)  # type: ignore[arg-type]


def test_packaged_templates_load_with_distinct_stable_hashes() -> None:
    names = list_templates()
    assert {"paper_ru", "demographics_ru", "paper_en"} <= set(names)
    hashes = {load_template(n).content_hash for n in names}
    assert len(hashes) == len(names)
    assert all(len(h) == 64 for h in hashes)
    assert load_template("paper_ru").content_hash == load_template("paper_ru").content_hash


def test_paper_prompt_is_the_authors_prompt() -> None:
    t = load_template("paper_ru")
    msgs = t.render(sample())
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[1]["content"] == AUTHORS_USER.format(
        anamnesis="Боли в спине после нагрузки.", symptoms="боль в пояснице; онемение ноги"
    )
    assert "Ответ должен быть на русском языке." in msgs[0]["content"]
    # The code and disease choose the example and symptoms; they are not in the text.
    assert "M54" not in msgs[1]["content"]


def test_langchain_template_is_f_string() -> None:
    lc = load_template("paper_ru").as_langchain()
    assert type(lc).__name__ == "ChatPromptTemplate"
    assert set(lc.input_variables) == {"example", "symptoms"}


def test_missing_example_uses_the_authors_generic_opening() -> None:
    msgs = load_template("paper_ru").render(sample(example_text=None, example_id=None))
    assert "Пациент обратился с жалобами." in msgs[1]["content"]


def test_values_with_braces_are_not_interpreted() -> None:
    msgs = load_template("paper_en").render(sample(example_text="{symptoms} {0} {{x}}"))
    assert "{symptoms} {0} {{x}}" in msgs[1]["content"]


def test_demographics_variant() -> None:
    t = load_template("demographics_ru")
    demo = {"age": 45, "sex": "male", "marital_status": "married", "smoking": True}
    user = t.render(sample(demographics=demo))[-1]["content"]
    assert "женатый курящий мужчина 45 лет, который жалуется на боль в пояснице, онемение ноги." in user
    with pytest.raises(InputError, match="needs demographics"):
        t.render(sample())
    assert patient_phrase({"age": 22, "sex": "female", "marital_status": "single", "smoking": False}) == (
        "незамужняя некурящая женщина 22 года",
        "которая",
    )


def test_english_counterpart() -> None:
    msgs = load_template("paper_en").render(sample(symptoms=["cough", "fever"], example_text="Cough for a week."))
    assert "cough; fever" in msgs[1]["content"] and "Cough for a week." in msgs[1]["content"]


def _write(tmp_path: Path, user: str) -> Path:
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"name": "custom", "messages": [["user", user]]}), encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "user",
    [
        "{example.__class__}",  # attribute access
        "{example[0]}",  # indexing
        "{secret}",  # unknown variable
        "{example!r}",  # conversion
        "{example:>10}",  # format spec
        "unbalanced {",
    ],
)
def test_unsafe_or_broken_templates_are_refused(tmp_path: Path, user: str) -> None:
    load_template.cache_clear()
    with pytest.raises(InputError):
        load_template(str(_write(tmp_path, user)))


def test_jinja_syntax_stays_literal(tmp_path: Path) -> None:
    load_template.cache_clear()
    t = load_template(str(_write(tmp_path, "{{ example.__class__ }} {symptoms}")))
    out = t.render(sample())[0]["content"]
    assert out == "{ example.__class__ } боль в пояснице; онемение ноги"
    load_template.cache_clear()
    with pytest.raises(InputError, match="placeholder"):
        load_template(str(_write(tmp_path, "{% for x in y %}{{ x }}{% endfor %}")))


def test_unknown_template_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="unknown template 'nope'"):
        load_template("nope")


def test_template_file_errors_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.json"):
        load_template(str(p))


def _langchain_render(t: PromptTemplate, s: Sample, redact: bool) -> list[dict[str, str]]:
    """What render() returned when it formatted through LangChain (before str.format took over)."""
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    msgs = t.as_langchain().format_messages(**t.variables_for(s, redact=redact))
    return [{"role": roles[m.type], "content": str(m.content)} for m in msgs]


def _render_cases() -> list[Sample]:
    shots = [
        {"id": "q7", "text": "Жалобы на кашель, температуру 38. Слабость {x} три дня.", "symptoms": ["кашель"]},
        {"id": "q8", "text": "Боль в горле {{y}}, насморк.", "symptoms": None},
    ]
    demo = {"age": 41, "sex": "female", "marital_status": "married", "smoking": True}
    return [
        sample(),
        sample(example_text=None, example_id=None),
        sample(example_text="{symptoms} {0} {{x}} }{", demographics=demo),
        sample(demographics={"age": 22, "sex": "male"}, extra={"examples": shots}),
        sample(symptoms=["Cough", "fever {z}"], demographics=demo, extra={"examples": shots[:1]}),
    ]


def test_render_gives_the_messages_langchain_gave(tmp_path: Path) -> None:
    # Every packaged template and a file template with an assistant turn and literal braces, sent and redacted.
    p = tmp_path / "t.json"
    msgs = [["system", "{{json}} {code} {category}"], ["user", "{symptoms_comma}: {example}"], ["ai", "{disease}"]]
    p.write_text(json.dumps({"name": "custom", "messages": msgs}), encoding="utf-8")
    templates = [load_template(n) for n in list_templates()] + [load_template(str(p))]
    compared = 0
    for t in templates:
        for s in _render_cases():
            if t.needs_demographics and not s.demographics:
                continue
            for redact in (False, True):
                assert t.render(s, redact=redact) == _langchain_render(t, s, redact), (t.name, s.extra, redact)
                compared += 1
    assert compared >= 2 * 3 * len(templates)
