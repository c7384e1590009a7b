"""``medsyn ift``, ``medsyn finetune``, ``medsyn merge``: instruction data, LoRA fine-tuning, merged export.

Heavy libraries (torch, transformers, peft) load inside the commands, never at CLI import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from medsyn.cli.consoles import make_console
from medsyn.cli.options import path_of

console = make_console()


def ift(
    out: Path = typer.Option(
        ..., "--out", parser=path_of("--out"), help="Instruction JSONL to write (its card goes beside it)."
    ),
    store: Path | None = typer.Option(None, "--store", help="Read symptoms from this knowledge-graph store."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="...or from a remote SPARQL endpoint."),
    symptom_map: Path | None = typer.Option(None, "--symptom-map", help="JSON {code: [symptoms]} (no store)."),
    symptom_source: str = typer.Option("wikimed", "--symptom-source", help="Knowledge source of the symptoms."),
    train: Path | None = typer.Option(None, "--train", help="RuMedTop3 train notes (default: shared data)."),
    dev: Path | None = typer.Option(None, "--dev", help="Dev notes to exclude (default: shared data)."),
    generated: Path | None = typer.Option(None, "--generated", help="Generated notes JSONL to mix in (train only)."),
    seed: int = typer.Option(0, "--seed"),
    eval_fraction: float = typer.Option(0.05, "--eval-fraction", help="Share of notes held out for eval loss."),
    example_share: float = typer.Option(0.5, "--example-share", help="Share of write records with an example."),
    symptoms: str = typer.Option(
        "drawn",
        "--symptoms",
        help="Write records list symptoms 'drawn' from a code of the category (the paper) or 'stated' by the note.",
    ),
    tasks: str = typer.Option("write,continue", "--tasks", help="Comma-separated tasks: write, continue."),
    tokenizer: str | None = typer.Option(None, "--tokenizer", help="Base spec (smollm2|DIR) for token lengths."),
    canaries: int = typer.Option(
        0, "--canaries", help="Plant K seeded canary notes with secrets (manifest: OUT stem + .canaries.json)."
    ),
    canary_repeats: int = typer.Option(1, "--canary-repeats", help="Copies of each canary in the train part."),
) -> None:
    """Build the instruction dataset (write a note / continue a note) from RuMedTop3 train notes and the KG."""
    from medsyn.atomic import check_output
    from medsyn.training.instructions import BuildOptions, build_dataset, card_paths

    check_output(out, folder=False, inputs=[p for p in (train, dev, generated, symptom_map) if p is not None])
    opts = BuildOptions(
        seed=seed,
        eval_fraction=eval_fraction,
        example_share=example_share,
        symptoms=symptoms,
        tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
        canaries=canaries,
        canary_repeats=canary_repeats,
    )
    tok = None
    if tokenizer:
        from medsyn.training.models import load_tokenizer

        tok = load_tokenizer(tokenizer)
    kg = None
    if store is not None or endpoint is not None:
        from medsyn.kg.opener import open_store

        kg = open_store(store, endpoint=endpoint, read_only=True)
    from medsyn.cli.progress import steps
    from medsyn.generation.mentions import mentioned_symptoms
    from medsyn.training.instructions import BUILD_STEPS

    try:
        with steps("ift", len(BUILD_STEPS)) as step:
            card = build_dataset(
                out,
                train=train,
                dev=dev,
                store=kg,
                symptom_map=symptom_map,
                symptom_source=symptom_source,
                generated=generated,
                options=opts,
                tokenizer=tok,
                tokenizer_name=tokenizer,
                on_step=step,
                matcher=mentioned_symptoms if symptoms == "stated" else None,
            )
    finally:
        if kg is not None:
            kg.close()
    parts = ", ".join(f"{k} {v}" for k, v in card["by_task_split"].items())
    console.print(f"wrote {card['records']} records to {out} ({parts}); card: {card_paths(out)[0]}", highlight=False)
    if canaries:
        from medsyn.training.canaries import manifest_path

        console.print(f"planted {canaries} canaries x{canary_repeats}; manifest: {manifest_path(out)}", highlight=False)


def finetune(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="Instruction JSONL (from `medsyn ift`)."),
    out: Path = typer.Option(
        ..., "--out", parser=path_of("--out"), help="Adapter directory (checkpoints under out/checkpoints)."
    ),
    base: str = typer.Option("smollm2", "--base", help="Base model: smollm2, a model directory or a .gguf file."),
    r: int = typer.Option(16, "--r", help="LoRA rank."),
    alpha: int = typer.Option(16, "--alpha", help="LoRA alpha."),
    dropout: float = typer.Option(0.05, "--dropout", help="LoRA dropout."),
    target_modules: str = typer.Option("q_proj,k_proj,v_proj,o_proj", "--target-modules"),
    lr: float = typer.Option(2e-5, "--lr", help="Peak learning rate (cosine schedule)."),
    warmup_ratio: float = typer.Option(0.03, "--warmup-ratio"),
    weight_decay: float = typer.Option(0.0, "--weight-decay"),
    batch_size: int = typer.Option(256, "--batch-size", help="Records per optimiser step."),
    micro_batch_size: int = typer.Option(4, "--micro-batch-size", help="Records per forward pass."),
    max_len: int = typer.Option(2048, "--max-len", help="Tokens per record (longer ones are cut)."),
    epochs: float = typer.Option(1.0, "--epochs"),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimiser steps (overrides --epochs)."),
    max_train: int | None = typer.Option(None, "--max-train", help="Use N train records (seeded subset)."),
    max_eval: int | None = typer.Option(256, "--max-eval", help="Use N held-out records for eval loss."),
    eval_every: int | None = typer.Option(None, "--eval-every", help="Also evaluate every N steps."),
    save_every: int = typer.Option(50, "--save-every", help="Checkpoint every N steps."),
    seed: int = typer.Option(0, "--seed"),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:1... (default: cuda if present)."),
    restart: bool = typer.Option(False, "--restart", help="Discard checkpoints/adapter in --out and start over."),
    stop_after: int | None = typer.Option(None, "--stop-after", help="Stop (checkpointed) after N steps this call."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    quantize: str | None = typer.Option(
        None, "--quantize", help="Load the base in 4bit (QLoRA, NF4) or 8bit with bitsandbytes (CUDA only)."
    ),
    gradient_checkpointing: bool = typer.Option(
        False, "--gradient-checkpointing", help="Recompute activations: less GPU memory at long sequences."
    ),
    accelerate_config: Path | None = typer.Option(
        None,
        "--accelerate-config",
        help="An `accelerate config` YAML file (DDP, FSDP, DeepSpeed ZeRO; processes, machines): runs this same "
        "command under `accelerate launch --config_file FILE`.",
    ),
) -> None:
    """LoRA fine-tuning (TRL SFTTrainer + PEFT); resumes automatically from the newest checkpoint in --out."""
    from medsyn.training.finetune import ACCELERATE_CONFIG_ENV, TrainConfig

    if accelerate_config is not None and not os.environ.get(ACCELERATE_CONFIG_ENV):
        # The launched processes carry the config in the environment: they train instead of launching again.
        raise typer.Exit(_launch(ctx, accelerate_config))
    from medsyn.training.finetune import finetune as run

    cfg = TrainConfig(
        r=r,
        alpha=alpha,
        dropout=dropout,
        target_modules=tuple(m.strip() for m in target_modules.split(",") if m.strip()),
        lr=lr,
        weight_decay=weight_decay,
        warmup_ratio=warmup_ratio,
        batch_size=batch_size,
        micro_batch_size=micro_batch_size,
        max_len=max_len,
        epochs=epochs,
        max_steps=max_steps,
        max_train=max_train,
        max_eval=max_eval,
        eval_every=eval_every,
        save_every=save_every,
        seed=seed,
        quantize=quantize,
        gradient_checkpointing=gradient_checkpointing,
    )
    m = run(base, data, out, config=cfg, device=device, restart=restart, stop_after=stop_after, progress=progress)
    if int(os.environ.get("RANK", "0") or 0) == 0:  # under accelerate: the main process reports
        _report_finetune(m, out)


def _report_finetune(m: dict[str, Any], out: Path) -> None:
    if not m.get("complete"):
        console.print(f"stopped at step {m['step']}/{m['total_steps']}; rerun the same command to resume")
        return
    met = m["metrics"]
    before, after = met["eval_loss_base"], met["eval_loss"]
    loss = f"held-out loss {before:.4f} -> {after:.4f}" if before is not None and after is not None else "no eval split"
    console.print(
        f"adapter {out} ({m['adapter_hash'][:19]}...): {met['steps']} steps, {loss}, {met['wall_time_s']} s",
        highlight=False,
    )


def _options_of(ctx: typer.Context) -> list[str]:
    """This command's parsed options as command-line flags again, without ``--accelerate-config``. Rebuilt from the
    parsed values rather than taken from ``sys.argv``: under ``medsyn run`` the argv is the pipeline's."""
    out: list[str] = []
    for p in ctx.command.params:
        value = ctx.params.get(p.name or "")
        if getattr(p, "param_type_name", "") != "option" or p.name == "accelerate_config" or value is None:
            continue
        if getattr(p, "is_flag", False):
            if p.secondary_opts:
                out.append(p.opts[0] if value else p.secondary_opts[0])
            elif value:
                out.append(p.opts[0])
            continue
        for item in value if getattr(p, "multiple", False) else [value]:
            out += [p.opts[0], str(item)]
    return out


def _launch(ctx: typer.Context, config: Path) -> int:
    """Rerun this ``medsyn finetune`` command (without ``--accelerate-config``) under ``accelerate launch``."""
    import subprocess
    import sys

    from medsyn.errors import InputError
    from medsyn.training.finetune import ACCELERATE_CONFIG_ENV

    try:
        import yaml

        doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read it ({exc.strerror})", path=config) from None
    except yaml.YAMLError as exc:
        raise InputError(f"not an accelerate config (YAML): {str(exc).splitlines()[0]}", path=config) from None
    if not isinstance(doc, dict) or "distributed_type" not in doc:
        raise InputError(
            "not an accelerate config: no distributed_type (write one with `accelerate config`)", path=config
        )
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "-m", "medsyn"]
    cmd += ["finetune", *_options_of(ctx)]
    return subprocess.run(cmd, env={**os.environ, ACCELERATE_CONFIG_ENV: str(config)}, check=False).returncode


def merge(
    adapter: Path = typer.Argument(..., help="Adapter directory (from `medsyn finetune`)."),
    out: Path = typer.Option(..., "--out", parser=path_of("--out"), help="New directory for the merged model."),
    base: str | None = typer.Option(None, "--base", help="Base model (default: the one in the adapter manifest)."),
) -> None:
    """Fold a LoRA adapter into its base model and save a plain transformers model directory."""
    from medsyn.training.finetune import merge as run

    console.print(f"merged model written to {run(adapter, out, base=base)}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("ift")(ift)
    app.command("finetune")(finetune)
    app.command("merge")(merge)
