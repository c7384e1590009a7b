"""Pipelines from config files, and publishing a build to a real SPARQL server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from medsyn.errors import InputError
from medsyn.pipeline import load_pipeline, parse_pipeline, plan_pipeline
from medsyn.testing.commands import MEDSYN


def _root():  # type: ignore[no-untyped-def]
    import typer

    from medsyn.cli import app

    return typer.main.get_command(app)


def _options(planned: list, i: int) -> dict[str, str]:
    """Step ``i``'s command-line options as {flag: value} (flags without a value are not among them)."""
    args = planned[i][1]
    return dict(zip(args[1::2], args[2::2], strict=False))


def test_demo_pipeline_plans_to_real_commands(repo_root: Path) -> None:
    steps = load_pipeline(repo_root / "pipelines" / "demo.toml")
    planned = plan_pipeline(_root(), steps, source="demo.toml")
    commands = [args[: 2 if args[0] in {"kg", "audit", "eval"} else 1] for _, args in planned]
    assert commands == [["kg", "build"], ["weights"], ["generate"], ["audit", "verify"], ["eval", "quality"]]
    gen = _options(planned, 2)
    assert (gen["--backend"], gen["--model"], gen["--template"]) == ("llamacpp", "gemma3", "fewshot_expand_ru")
    assert (gen["--candidates"], gen["--min-recall"], gen["--max-unseen-phrases"]) == ("1", "0.0", "0.6")


def test_stated_lora_recipe_trains_an_epoch_and_serves_the_adapter_through_llama_cpp(repo_root: Path) -> None:
    steps = load_pipeline(repo_root / "pipelines" / "stated-lora.toml")
    planned = plan_pipeline(_root(), steps, source="stated-lora.toml")
    commands = [" ".join(args[: 2 if args[0] in {"kg", "eval"} else 1]) for _, args in planned]
    assert commands == ["kg build", "ift", "sample", "finetune", "generate", "generate", "eval quality"]
    ift, tune = _options(planned, 1), _options(planned, 3)
    assert (ift["--symptoms"], ift["--tasks"]) == ("stated", "write")
    assert tune["--epochs"] == "1.0" and tune["--base"] == "gemma3"
    before, after = _options(planned, 4), _options(planned, 5)
    assert after.pop("--adapter") == tune["--out"] and after.pop("--out") != before.pop("--out")
    assert before == after and after["--backend"] == "llamacpp" and after["--template"] == "ift_stated_ru"


def test_local_lora_recipe_plans_to_real_commands(repo_root: Path) -> None:
    steps = load_pipeline(repo_root / "pipelines" / "local-lora.toml")
    planned = plan_pipeline(_root(), steps, source="local-lora.toml")
    commands = [" ".join(args[: 2 if args[0] in {"kg", "eval"} else 1]) for _, args in planned]
    assert commands == ["kg build", "ift", "sample", "finetune", "generate", "generate", "eval quality"]
    before, after = _options(planned, 4), _options(planned, 5)
    # Before and after differ only in the adapter: same samples, model, prompt and seed.
    assert "--adapter" not in before and after.pop("--adapter") == "runs/local-lora/adapter"
    assert {k: v for k, v in before.items() if k != "--out"} == {k: v for k, v in after.items() if k != "--out"}


def test_paper_lora_recipe_has_the_papers_hyperparameters(repo_root: Path) -> None:
    steps = load_pipeline(repo_root / "pipelines" / "paper-lora.toml")
    planned = plan_pipeline(_root(), steps, source="paper-lora.toml")
    commands = [" ".join(args[: 2 if args[0] in {"kg", "eval"} else 1]) for _, args in planned]
    assert commands == ["kg build", "ift", "finetune", "sample", "generate", "eval quality"]
    ft = next(args for _, args in planned if args[0] == "finetune")
    opts = dict(zip(ft[1::2], ft[2::2], strict=False))
    assert opts["--r"] == "16" and opts["--alpha"] == "16" and opts["--dropout"] == "0.05"
    assert opts["--target-modules"] == "q_proj,k_proj,v_proj,o_proj" and opts["--lr"] == "2e-05"
    assert opts["--batch-size"] == "256" and opts["--max-len"] == "2048" and "--gradient-checkpointing" in ft
    gen = next(args for _, args in planned if args[0] == "generate")
    assert dict(zip(gen[1::2], gen[2::2], strict=False))["--adapter"] == opts["--out"]


def test_ray_recipe_plans_to_a_ray_generation_on_a_pool(repo_root: Path) -> None:
    steps = load_pipeline(repo_root / "pipelines" / "ray-openai.toml")
    planned = plan_pipeline(_root(), steps, source="ray-openai.toml")
    assert [" ".join(args[: 2 if args[0] in {"kg", "audit"} else 1]) for _, args in planned] == [
        "kg build",
        "generate",
        "audit verify",
    ]
    gen = planned[1][1]
    assert gen[gen.index("--engine") + 1] == "ray" and gen.count("--base-url") == 2 and "--shard-rows" in gen


def test_options_translate_flags_lists_and_arguments() -> None:
    steps = parse_pipeline(
        '[[step]]\ncommand = "eval quality"\nsynthetic = ["a.jsonl", "b.jsonl"]\ninclude_rejected = true\n'
        '[[step]]\ncommand = "audit verify"\nfolder = "out"\n[[step]]\ncommand = "generate"\nn = 3\nout = "o"\n'
        "progress = false\n",
        source="t.toml",
    )
    planned = [args for _, args in plan_pipeline(_root(), steps, source="t.toml")]
    assert planned[0] == ["eval", "quality", "--synthetic", "a.jsonl", "--synthetic", "b.jsonl", "--include-rejected"]
    assert planned[1][-1] == "out"
    assert "--no-progress" in planned[2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1", "unknown top-level key 'x'"),
        ("[[step]]\nn = 1\n", "step 1: missing 'command'"),
        ('[[step]]\ncommand = "nope"\n', "unknown command 'nope'"),
        ('[[step]]\ncommand = "kg"\n', "is a command group"),
        ('[[step]]\ncommand = "generate"\nfoo = 1\n', "unknown option 'foo'"),
        ("[[step]\n", "invalid TOML"),
        ("step = [1]\n", "step 1: not a table"),
        ('[[step]]\ncommand = "kg stats"\nname = 3\n', "step 1: name must be a string"),
    ],
)
def test_bad_pipelines_name_the_file_and_step(text: str, message: str) -> None:
    with pytest.raises(InputError, match=r"p\.toml") as info:
        plan_pipeline(_root(), parse_pipeline(text, source="p.toml"), source="p.toml")
    assert message in str(info.value)


def test_run_skips_existing_outputs_and_reports_errors_in_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "exists"
    marker.mkdir()
    cfg = tmp_path / "p.toml"
    cfg.write_text(
        f'[[step]]\ncommand = "kg build"\nstore = "{marker}"\nskip_if_exists = "{marker}"\n'
        f'[[step]]\ncommand = "kg stats"\nstore = "{tmp_path / "missing"}"\n',
        encoding="utf-8",
    )
    r = subprocess.run([*MEDSYN, "run", str(cfg)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "skipped" in r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "missing" in errors[0]


def test_kg_build_publishes_to_a_real_oxigraph_server(tmp_path: Path, shared_data: Path) -> None:
    from medsyn.kg.remote_store import RemoteStore
    from medsyn.testing.servers import oxigraph_server

    with oxigraph_server(tmp_path / "ox") as server:
        r = subprocess.run(
            [*MEDSYN, "kg", "build", "-q", "--sources", "icd10-minzdrav", "--endpoint", server.query_url],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "MEDSYN_DATA": str(shared_data)},
        )
        assert r.returncode == 0, r.stderr
        assert "published" in r.stdout
        remote = RemoteStore(server.query_url, update_endpoint=server.update_url)
        rows = remote.query(
            "PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT (COUNT(?c) AS ?n) WHERE { ?c a ms:ICD10Chapter }"
        )
        assert int(rows[0]["n"].value) == 22
        versions = remote.query(
            "PREFIX ms: <https://w3id.org/medsyn/ontology#> SELECT ?v WHERE { ?b ms:contentHash ?v }"
        )
        assert len(versions) == 1
        remote.close()


def test_a_generation_folder_reads_as_one_note_set(tmp_path: Path) -> None:
    import json

    from medsyn.evaluation.data import read_notes

    def line(i: int, status: str, accepted: bool, text: str | None) -> str:
        rec = {"id": f"n{i}", "code": "M54", "response": text, "symptoms": ["боль"], "accepted": accepted}
        return json.dumps({**rec, "status": status}, ensure_ascii=False) + "\n"

    (tmp_path / "notes.jsonl").write_text(line(1, "accepted", True, "Жалобы на боль в спине."), encoding="utf-8")
    (tmp_path / "failures.jsonl").write_text(
        line(2, "rejected", False, "Боль.") + line(3, "truncated", False, "Боль в") + line(4, "error", False, None),
        encoding="utf-8",
    )
    assert [n.id for n in read_notes(tmp_path).notes] == ["n1"]
    both = read_notes(tmp_path, accepted_only=False)
    assert [n.id for n in both.notes] == ["n1", "n2"] and both.name == tmp_path.name
    (tmp_path / "notes.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="no accepted notes"):
        read_notes(tmp_path)
