"""Personal data in note text: the regexes (what they find and what they must not: temperatures, pressures, doses,
RuMedTop3's masks), names confirmed by natasha and pymorphy3, and ``generate --reject-pii`` end to end against the
real local OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from medsyn.generation.filter import FilterConfig, decide, score_note
from medsyn.generation.pii import ner_kinds, pii_kinds, regex_kinds, scan
from medsyn.kg.store import OxigraphStore
from medsyn.sampling.samples import write_samples
from medsyn.testing import demo_samples
from medsyn.testing.commands import MEDSYN
from medsyn.testing.openai_server import FakeOpenAIServer

FOUND = [
    ("осмотрена 18.02.2015, жалобы на боль", "date"),
    ("удаление опухолей 18.02.15 проведено", "date"),
    ("с 22 ноября беспокоит кашель", "date"),
    ("госпитализирован 3 марта 2019 года", "date"),
    ("УЗИ от 05/11/2020 без патологии", "date"),
    ("звонить по тел. +7 (912) 345-67-89", "phone"),
    ("телефон 8 912 345 67 89", "phone"),
    ("тел 89123456789", "phone"),
    ("паспорт 45 06 123456 выдан", "passport"),
    ("паспорт серия 4506 № 123456", "passport"),
    ("СНИЛС 112-233-445 95", "snils"),
    ("снилс: 11223344595", "snils"),
    ("полис ОМС 7751 2345 6789 0123", "oms_policy"),
    ("номер 7751234567890123 в базе", "oms_policy"),
    ("ИНН 7707083893", "inn"),
    ("ИНН: 500100732259", "inn"),
    ("пишите на ivanova.m@mail.ru", "email"),
    ("история болезни № 12345", "record_number"),
]
NOT_FOUND = [
    "Температура 38.5, АД 120/80 мм рт. ст., ЧСС 88",
    "В *ДАТА* перенесла ОРВИ, *ДАТА* в *ГОРОД* резкая боль",
    "Принимает Нурофен 200 мг 3 раза в день, Мидокалм 1,0 №5",
    "Болеет 8 лет, беременность 12 недель, 2-3 балла по ВАШ",
    "Гемоглобин 120 г/л, лейкоциты 8.9, СОЭ 15 мм/ч, глюкоза 5.6 ммоль/л",
    "Беспокоит кашель в течение 2 недель, в 2015 году оперирована",
    "ЭКГ: ритм синусовый 72 в мин, 1.5.2 степень",
    "Рост 165 см, вес 80 кг, ИМТ 29.4",
]


@pytest.mark.parametrize(("text", "kind"), FOUND)
def test_regex_finds(text: str, kind: str) -> None:
    assert kind in regex_kinds(text)


@pytest.mark.parametrize("text", NOT_FOUND)
def test_regex_ignores_clinical_numbers_and_masks(text: str) -> None:
    assert regex_kinds(text) == set()


def test_names_need_natasha_and_the_dictionary() -> None:
    assert ner_kinds("Пациентка Иванова Мария Петровна обратилась с жалобами на кашель.") == {"person"}
    assert "place" in ner_kinds("Приехала из Новосибирска, жалобы на головную боль.")
    assert "organisation" in ner_kinds("Наблюдается в ГБУЗ Городская клиническая больница № 5 с жалобами на боль.")
    # Eponyms, drugs and abbreviations that natasha tags as names are not names.
    assert ner_kinds("Положительный симптом Пастернацкого с обеих сторон, синдром Патерсона-Келли.") == set()
    assert ner_kinds("Получала Мидокалм, Нейробион, Ксефокам, ОАК и УЗИ ОМТ без улучшения.") == set()
    assert pii_kinds("Иванова Мария, тел. 8 912 345 67 89", names=False) == {"phone"}
    s = scan(["Жалобы на кашель.", "Иванова Мария Петровна, осмотр 18.02.2015"], ["a", "b"])
    assert (s.n, s.notes_with_pii, s.examples, s.per_kind) == (2, 1, ["b"], {"date": 1, "person": 1})


def test_filter_rejects_personal_data_only_when_asked() -> None:
    text = "Беспокоят кашель и лихорадка до 38 градусов третий день, осмотрена 18.02.2015."
    on, off = FilterConfig(min_words=3, reject_pii=True), FilterConfig(min_words=3)
    s = score_note(text, ["кашель", "лихорадка"], None, pii=True)
    assert s.pii == ("date",) and decide(s, on) == (False, "personal data (date)") and decide(s, off)[0]
    assert "pii" not in score_note(text, ["кашель"], None).to_dict()  # not looked for: not recorded
    assert "reject_pii" not in off.describe() and on.describe()["reject_pii"] is True


def test_generate_reject_pii_end_to_end(tmp_path: Path) -> None:
    """The CLI with --reject-pii against the real server: the replies with a name and a phone are rejected and
    recorded with the reason and the kinds; the clean ones are kept; without the flag the same replies are kept."""
    samples = tmp_path / "samples.jsonl"
    write_samples(samples, demo_samples(4))
    with FakeOpenAIServer(latency=0.0) as srv:
        results = {}
        for name, flag in (("on", ["--reject-pii"]), ("off", [])):
            srv.configure(script=["pii", "pii"])
            out, store = tmp_path / name, tmp_path / f"store-{name}"
            OxigraphStore(store).close()  # generate writes provenance into an existing store
            cmd = [*MEDSYN, "generate", "--backend", "openai", "--base-url", srv.base_url]
            cmd += [
                "--samples",
                str(samples),
                "--out",
                str(out),
                "--no-progress",
                "--max-attempts",
                "3",
                "--store",
                str(store),
                *flag,
            ]
            r = subprocess.run(
                cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OPENAI_API_KEY": ""}
            )
            assert r.returncode == 0, r.stderr
            notes = [json.loads(x) for x in (out / "notes.jsonl").read_text(encoding="utf-8").splitlines()]
            fails = (
                (out / "failures.jsonl").read_text(encoding="utf-8").splitlines()
                if (out / "failures.jsonl").exists()
                else []
            )
            results[name] = (notes, [json.loads(x) for x in fails])
    notes, fails = results["on"]
    assert len(notes) == 4 and not any("Иванова" in n["response"] for n in notes)
    assert len(fails) == 2 and all(f["status"] == "rejected" and f["reason"].startswith("personal data") for f in fails)
    assert all({"person", "phone", "date"} <= set(f["scores"]["pii"]) for f in fails)
    notes, fails = results["off"]
    assert len(notes) == 4 and sum("Иванова" in n["response"] for n in notes) == 2 and not fails
