"""Canaries (issue #25 item 2): seeded planting by ``medsyn ift --canaries``, the manifest, the secret scan, and the
exposure test the issue asks for: a tiny LLaMA fine-tuned until it memorises one canary ranks that secret first,
while the same model on a canary it never saw, and the base model on the memorised one, do not."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medsyn.errors import InputError, StoreError
from medsyn.evaluation.canaries import (
    candidate_secrets,
    exposures,
    measure_exposure,
    rank_of_first,
    scan_secrets,
)
from medsyn.testing.commands import MEDSYN
from medsyn.training.canaries import manifest_path, read_manifest
from medsyn.training.instructions import BuildOptions, build_dataset, file_sha256, read_dataset, write_dataset

SYMPTOM_MAP = "medsyn/mkg/rumedtop3_wikimed_symptoms_equipped_with_rumedprime.json"
N_CANDIDATES = 256
"""Exposure tops out at log2(256) = 8 bits; a model that never saw a canary averages about 1.44 bits."""


def _medsyn(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEDSYN, *map(str, args)], capture_output=True, text=True, timeout=600, check=False)


def _train_file(folder: Path, shared_data: Path, n: int) -> Path:
    lines = (shared_data / "rumedbench/RuMedTop3/train_v1.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    path = folder / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _build(out: Path, train: Path, shared_data: Path, **opts: object) -> dict[str, object]:
    return build_dataset(out, train=train, symptom_map=shared_data / SYMPTOM_MAP, options=BuildOptions(**opts))


def test_planting_is_seeded_unique_and_leaves_the_rest_alone(tmp_path: Path, shared_data: Path) -> None:
    train = _train_file(tmp_path, shared_data, 30)
    plain, a, b, c = (tmp_path / f"{n}.jsonl" for n in ("plain", "a", "b", "c"))
    _build(plain, train, shared_data, seed=3)
    card = _build(a, train, shared_data, seed=3, canaries=5, canary_repeats=2)
    _build(b, train, shared_data, seed=3, canaries=5, canary_repeats=2)
    _build(c, train, shared_data, seed=4, canaries=5, canary_repeats=2)

    # same seed: byte-identical dataset and manifest (bar the dataset's own name)
    assert a.read_bytes() == b.read_bytes()
    ma, mb = (json.loads(manifest_path(p).read_text(encoding="utf-8")) for p in (a, b))
    assert ma | {"dataset": ""} == mb | {"dataset": ""} and ma["dataset"] == "a.jsonl"
    assert ma["dataset_sha256"] == file_sha256(a) and ma["seed"] == 3 and ma["repeats"] == 2
    planted = read_manifest(manifest_path(a))
    assert len(planted) == 5 and len({x.secret for x in planted}) == 5 and len({x.text for x in planted}) == 5
    assert {x.secret for x in planted}.isdisjoint(x.secret for x in read_manifest(manifest_path(c)))
    assert card["sources"]["canaries"] == {"count": 5, "manifest": "a.canaries.json"}  # type: ignore[index]

    # each canary is a train record (repeated), whose prompt and answer the manifest holds; the rest is unchanged
    records = read_dataset(a)
    canary_records = [r for r in records if r.task == "canary"]
    assert len(canary_records) == 10 and all(r.split == "train" for r in canary_records)
    by_id = {x.id: x for x in planted}
    for r in canary_records:
        x = by_id[r.note_id]  # type: ignore[index]
        assert (r.prompt, r.output) == (x.prompt, x.text) and x.text.endswith(f" {x.secret}.")
        assert all(s in r.input for s in x.symptoms)
    assert [r for r in records if r.task != "canary"] == read_dataset(plain)
    first = min(i for i, r in enumerate(records) if r.task == "canary")
    assert first < len(records) - len(canary_records)  # spread among the records, not appended
    assert not any(x.secret in r.output for r in read_dataset(plain) for x in planted)


def test_manifest_is_written_before_the_dataset_and_atomically(tmp_path: Path, shared_data: Path) -> None:
    train = _train_file(tmp_path, shared_data, 10)
    out = tmp_path / "ift.jsonl"
    manifest_path(out).mkdir()  # the manifest cannot be written: nothing may be left half done
    with pytest.raises(StoreError, match="cannot write"):
        _build(out, train, shared_data, canaries=2)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ift.canaries.json", "train.jsonl"]
    assert list(manifest_path(out).iterdir()) == []


def test_ift_cli_plants_canaries_and_refuses_bad_counts(tmp_path: Path, shared_data: Path) -> None:
    train = _train_file(tmp_path, shared_data, 10)
    out = tmp_path / "ift.jsonl"
    args = ["ift", "--out", out, "--train", train, "--symptom-map", shared_data / SYMPTOM_MAP, "--seed", "1"]
    done = _medsyn(*args, "--canaries", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "planted 3 canaries" in done.stdout and "ift.canaries.json" in done.stdout
    assert sum(r.task == "canary" for r in read_dataset(out)) == 3 and len(read_manifest(manifest_path(out))) == 3
    bad = _medsyn(*args, "--canaries", "-1")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "canaries" in bad.stderr

    (tmp_path / "bad.json").write_text('{"format": "medsyn-canaries/1"}', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.json: field 'secret_space'"):
        read_manifest(tmp_path / "bad.json")
    doc = json.loads(manifest_path(out).read_text(encoding="utf-8"))
    doc["canaries"][1]["secret"] = "12a456"
    (tmp_path / "bad.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.json: field 'canaries\[1\]\.secret': expected 6 digits"):
        read_manifest(tmp_path / "bad.json")


def test_scan_secrets_finds_whole_secrets_also_split(tmp_path: Path, shared_data: Path) -> None:
    train = _train_file(tmp_path, shared_data, 5)
    _build(tmp_path / "ift.jsonl", train, shared_data, canaries=3)
    c = read_manifest(manifest_path(tmp_path / "ift.jsonl"))
    s0, s1 = c[0].secret, c[1].secret
    notes = [
        ("n1", "f:1", f"Жалобы на кашель. Полис {s0}."),
        ("n2", "f:2", f"Код {s1[:3]} {s1[3:]}, температура 38."),
        ("n3", "f:3", f"Номер 9{s0} и {s1}7"),  # inside longer numbers: not the secret
        ("n4", "f:4", "Боль в пояснице 3 дня."),
    ]
    hits = scan_secrets(notes, c)
    assert [(h.canary, h.note_id, h.where) for h in hits] == [(c[0].id, "n1", "f:1"), (c[1].id, "n2", "f:2")]
    assert rank_of_first([-1.0, -3.0, -0.5, -1.0]) == 3 and rank_of_first([0.0, -1.0]) == 1
    cands = candidate_secrets(s0, 50, np.random.default_rng(0))
    assert cands[0] == s0 and len(set(cands)) == 50 and all(len(x) == 6 and x.isdigit() for x in cands)


@pytest.fixture(scope="module")
def memorised(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, Path, Path]:
    """(tiny base, adapter, manifest): two canaries planted; the adapter is trained on canary-0 but not canary-1."""
    from medsyn.testing.tiny_llama import make_tiny_llama
    from medsyn.training.finetune import TrainConfig, finetune

    d = tmp_path_factory.mktemp("canary")
    _build(
        d / "ift.jsonl", _train_file(d, shared_data, 4), shared_data, eval_fraction=0.0, canaries=2, canary_repeats=2
    )
    records = read_dataset(d / "ift.jsonl")
    planted = read_manifest(manifest_path(d / "ift.jsonl"))
    seen = [r for r in records if r.note_id != planted[1].id]
    write_dataset(seen, d / "seen.jsonl", {"records": len(seen), "codes": 0, "with_example": 0,
                                           "by_task_split": {}, "length_unit": "words", "lengths": {}})  # fmt: skip
    # The base's tokenizer never sees a canary (it would learn the secrets' digits as tokens).
    base = make_tiny_llama(d / "tiny", vocab_texts=[r.output for r in records if r.task != "canary"], seed=0)
    cfg = TrainConfig(
        r=8,
        alpha=16,
        lr=1e-2,
        batch_size=4,
        micro_batch_size=4,
        max_len=256,
        max_steps=40,
        max_eval=0,
        save_every=1000,
        warmup_ratio=0.1,
        target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    )
    finetune(str(base), d / "seen.jsonl", d / "adapter", config=cfg, progress=False)
    return base, d / "adapter", manifest_path(d / "ift.jsonl")


def test_a_memorised_canary_is_told_apart_from_controls(memorised: tuple[Path, Path, Path]) -> None:
    base, adapter, manifest = memorised
    planted = read_manifest(manifest)
    trained = measure_exposure(adapter, planted, n_candidates=N_CANDIDATES, rng=np.random.default_rng(0))
    control = measure_exposure(None, planted, base=str(base), n_candidates=N_CANDIDATES, rng=np.random.default_rng(0))
    top = math.log2(N_CANDIDATES)
    seen, unseen, untrained = trained[0].exposure, trained[1].exposure, control[0].exposure
    # neither control comes within half the scale of the memorised canary (which ranks at or near the top)
    assert seen - unseen >= top / 2 and seen - untrained >= top / 2, (seen, unseen, untrained)
    # the same draws of candidates: the comparison is of models, not of candidate sets
    assert [e.candidates for e in trained + control] == [N_CANDIDATES] * 4


def test_eval_canaries_cli_reports_a_leaked_secret(tmp_path: Path, memorised: tuple[Path, Path, Path]) -> None:
    """Notes the memorised model writes from its canaries' prompts, plus one that repeats canary-0 (a leak): the CLI
    measures exposure, finds exactly the leak, names where it is and exits 1; the model's own notes alone pass."""
    import torch

    from medsyn.training.models import load_causal_lm

    base, adapter, manifest = memorised
    planted = read_manifest(manifest)
    model, tok = load_causal_lm(str(base), adapter=adapter)
    texts = []
    for c in planted:
        # Prompt and answer are tokenised apart, as in training; the space before the secret starts its first token.
        ids = tok(c.prompt)["input_ids"] + tok(c.prefix.rstrip(), add_special_tokens=False)["input_ids"]
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=8, do_sample=False)  # fmt: skip
        texts.append(c.prefix.rstrip() + tok.decode(out[0, len(ids) :], skip_special_tokens=True))
    leaked_by_model = scan_secrets([(f"g{i}", "", t) for i, t in enumerate(texts)], planted)
    leaked, generated = tmp_path / "leaked.jsonl", tmp_path / "generated.jsonl"
    rows = [
        {"idx": f"g{i}", "symptoms": t, "code": c.code} for i, (t, c) in enumerate(zip(texts, planted, strict=True))
    ]
    generated.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    copy = {"idx": "copy", "symptoms": planted[0].text, "code": planted[0].code}
    leaked.write_text(generated.read_text(encoding="utf-8") + json.dumps(copy, ensure_ascii=False) + "\n", "utf-8")

    report = tmp_path / "report.json"
    done = _medsyn("eval", "canaries", "--adapter", adapter, "--canaries", manifest, "--notes", leaked,
                   "--candidates", 64, "--fail-exposure", 5, "--out", report)  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Canary exposure" in done.stdout and f"canary-0 ({planted[0].secret}) in {leaked}:3" in done.stdout
    rep = json.loads(report.read_text(encoding="utf-8"))
    assert rep["findings"]["secrets_in_notes"] == 1 + len(leaked_by_model) and rep["notes_scanned"] == 3
    assert [e["canary"] for e in rep["exposure"]] == ["canary-0", "canary-1"] and rep["exposure"][0]["rank"] <= 2
    assert rep["findings"]["exposure_over_threshold"] == ["canary-0"]  # 5 bits of log2(64) = 6: rank 1 or 2

    own = _medsyn("eval", "canaries", "--canaries", manifest, "--notes", generated, "--out", tmp_path / "r2.json")
    assert own.returncode == (1 if leaked_by_model else 0), own.stderr[-2000:]
    assert f"canary secrets found: {len(leaked_by_model)}" in own.stdout
    missing = _medsyn("eval", "canaries", "--canaries", tmp_path / "nope.json", "--notes", generated, "--out", report)
    assert missing.returncode == 2 and "nope.json" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1


def test_exposure_is_seeded(memorised: tuple[Path, Path, Path]) -> None:
    from medsyn.training.models import load_causal_lm

    base, adapter, manifest = memorised
    model, tok = load_causal_lm(str(base), adapter=adapter)
    planted = read_manifest(manifest)[1:]
    first, again = (exposures(model, tok, planted, n_candidates=32, rng=np.random.default_rng(7)) for _ in range(2))
    assert first == again


def test_eval_privacy_carries_the_generators_canaries(tmp_path: Path, memorised: tuple[Path, Path, Path]) -> None:
    """`eval privacy --adapter --canaries`: the exposure and each set's secret scan land in privacy.json and the
    report; a set holding a secret fails its goal (exit 1); --adapter without --canaries is one line, exit 2."""
    _, adapter, manifest = memorised
    planted = read_manifest(manifest)
    leaked = tmp_path / "leaked.jsonl"
    rows = [{"idx": "copy", "symptoms": planted[0].text, "code": planted[0].code}]
    leaked.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "privacy"
    done = _medsyn("eval", "privacy", "--synthetic", leaked, "--adapter", adapter, "--canaries", manifest,
                   "--candidates", 64, "--no-pii", "--bootstrap", 20, "--out", out)  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    assert "hold a canary's secret" in done.stderr
    (s,) = json.loads((out / "privacy.json").read_text(encoding="utf-8"))["sets"]
    assert s["canaries"]["secrets_in_notes"] == 1 and s["canaries"]["canaries"] == 2
    assert s["canaries"]["max_exposure_bits"] >= 5  # canary-0 was memorised: rank 1 or 2 of 64
    md = (out / "privacy.md").read_text(encoding="utf-8")
    assert "## Canaries" in md and "**fails the goal**: 1 note(s) hold a canary's secret" in md
    bad = _medsyn("eval", "privacy", "--synthetic", leaked, "--adapter", adapter, "--out", tmp_path / "x")
    assert bad.returncode == 2 and "--adapter needs --canaries" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
