"""Whole runs from a config file: a list of ``medsyn`` commands with their options.

A pipeline is TOML with one ``[[step]]`` table per command. ``command`` names it (``"kg build"``, ``"generate"``,
``"eval quality"``...) and every other key is one of that command's options, spelled as the option without its
dashes (``max_tokens`` for ``--max-tokens``). A config file and the command line therefore say the same thing and
are checked by the same code. ``skip_if_exists = PATH`` skips a step whose output is already there; commands that
resume (``generate``) simply run again. ``allow_finding = true`` lets the steps after a step run when it reports a
finding (exit 1); the pipeline then exits 1 at its end.

>>> steps = parse_pipeline('[[step]]\\ncommand = "kg stats"\\n', source="inline")
>>> steps[0].command, steps[0].options
('kg stats', {})
"""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsyn.errors import InputError

_RESERVED = {"command", "skip_if_exists", "name", "allow_finding"}


@dataclass
class Step:
    command: str
    options: dict[str, Any] = field(default_factory=dict)
    skip_if_exists: str | None = None
    name: str | None = None
    allow_finding: bool = False
    """A finding of this step (exit 1, e.g. a generation that accepted no note) does not stop the steps after it;
    the pipeline still exits 1 at the end."""

    @property
    def title(self) -> str:
        return self.name or self.command


def parse_pipeline(text: str, *, source: str) -> list[Step]:
    """Parse pipeline TOML into steps; a malformed file raises InputError naming the file and step."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML ({exc})", path=source) from None
    extra = sorted(set(data) - {"step", "description"})
    if extra:
        raise InputError(f"unknown top-level key {extra[0]!r}; a pipeline is a list of [[step]] tables", path=source)
    raw = data.get("step")
    if not isinstance(raw, list) or not raw:
        raise InputError("no [[step]] tables", path=source)
    steps = []
    for i, table in enumerate(raw, 1):
        if not isinstance(table, dict):
            raise InputError(f"step {i}: not a table; write each step as a [[step]] table", path=source)
        cmd = table.get("command")
        if not isinstance(cmd, str) or not cmd.strip():
            raise InputError(f"step {i}: missing 'command' (e.g. command = \"kg build\")", path=source)
        skip = table.get("skip_if_exists")
        if skip is not None and not isinstance(skip, str):
            raise InputError(f"step {i}: skip_if_exists must be a path string", path=source)
        name = table.get("name")
        if name is not None and not isinstance(name, str):
            raise InputError(f"step {i}: name must be a string", path=source)
        allow = table.get("allow_finding", False)
        if not isinstance(allow, bool):
            raise InputError(f"step {i}: allow_finding must be true or false", path=source)
        options = {k: v for k, v in table.items() if k not in _RESERVED}
        steps.append(Step(cmd.strip(), options, skip, name, allow))
    return steps


def load_pipeline(path: str | Path) -> list[Step]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("pipeline file not found", path=p) from None
    except IsADirectoryError:
        raise InputError("is a folder; give a pipeline .toml file", path=p) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 (byte {exc.start})", path=p) from None
    except OSError as exc:
        raise InputError(f"cannot read it ({exc.strerror or exc})", path=p) from None
    return parse_pipeline(text, source=str(p))


# Typer vendors its own click, so the command tree is read by duck typing: a group has ``get_command``.
def _is_group(node: Any) -> bool:
    return hasattr(node, "get_command") and hasattr(node, "list_commands")


def resolve_command(root: Any, command: str, *, where: str) -> tuple[list[str], Any]:
    """Find ``"kg build"`` in the CLI tree; unknown names raise InputError naming the step."""
    path = command.split()
    node = root
    for part in path:
        sub = node.get_command(None, part) if _is_group(node) else None
        if sub is None:
            raise InputError(f"{where}: unknown command {command!r}")
        node = sub
    if _is_group(node):
        raise InputError(f"{where}: {command!r} is a command group; name one of its commands")
    return path, node


def step_args(cmd: Any, options: dict[str, Any], *, where: str) -> list[str]:
    """Translate a step's options into command-line arguments, checking every key and value against the command.

    A list is only accepted by options that repeat; numbers, flags and choices are converted here, so a wrong type
    names the file, the step and the key; a value starting with ``-`` is passed as ``--option=value``, so it stays
    a value.
    """
    params = {p.name: p for p in cmd.params if p.name}
    args: list[str] = []
    positional: list[str] = []
    for key, value in options.items():
        p = params.get(key)
        if p is None:
            allowed = ", ".join(sorted(k for k in params if k != "help"))
            raise InputError(f"{where}: unknown option {key!r} (allowed: {allowed})")
        many = bool(getattr(p, "multiple", False)) or getattr(p, "nargs", 1) == -1
        if isinstance(value, list) and not many:
            raise InputError(f"{where}: option {key!r} takes one value, not a list")
        if isinstance(value, dict):
            raise InputError(f"{where}: option {key!r} takes a value, not a table")
        values = value if isinstance(value, list) else [value]
        for v in values:
            _check_value(cmd, p, key, v, where=where)
        if p.param_type_name == "argument":
            positional.extend(str(v) for v in values)
            continue
        if p.is_flag:
            if not isinstance(value, bool):
                raise InputError(f"{where}: option {key!r} is a flag: write true or false, got {value!r}")
            if value:
                args.append(p.opts[0])
            elif p.secondary_opts:
                args.append(p.secondary_opts[0])
            continue
        long = next((o for o in p.opts if o.startswith("--")), None)
        for v in values:
            text = str(v).lower() if isinstance(v, bool) else str(v)
            if not text.startswith("-"):
                args += [p.opts[0], text]
            elif long is not None:
                args.append(f"{long}={text}")  # one token: click cannot take the value for an option
            else:
                raise InputError(f"{where}: option {key!r}: value {text!r} starts with '-'")
    # "--" ends the options: a positional value starting with "-" is not read as one.
    return [*args, "--", *positional] if any(v.startswith("-") for v in positional) else [*args, *positional]


_CHECKED = (int, float, bool)


def _check_value(cmd: Any, p: Any, key: str, value: Any, *, where: str) -> None:
    """Convert a number or flag value with the option's own type, to report a bad one now, naming the step."""
    if isinstance(value, dict | list):
        raise InputError(f"{where}: option {key!r} takes a plain value, got {type(value).__name__}")
    annotation = getattr(getattr(p, "type_descriptor", None), "annotation", None)
    if annotation not in _CHECKED:
        return
    if annotation is int and isinstance(value, float) and not value.is_integer():
        raise InputError(f"{where}: option {key!r}: {value!r} is not an integer")
    try:
        p.process_value(cmd.context_class(cmd), value)
    except Exception as exc:  # the vendored click's BadParameter: its message says what is wrong
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        message = message.split(": ", 1)[1] if message.startswith("Invalid value for") else message
        raise InputError(f"{where}: option {key!r}: {message} (got {value!r})") from None


def plan_pipeline(
    root: Any, steps: list[Step], *, source: str, running: tuple[Path, ...] = ()
) -> list[tuple[Step, list[str]]]:
    """Check every step before running any, so a typo in step 3 does not surface after a long step 2.

    A ``run`` step's pipeline is checked too, down the chain: a pipeline that runs itself (directly or through
    others) is refused here, in one line, instead of recursing until Python gives up. ``running`` are the pipeline
    files above this one.
    """
    chain = (*running, Path(source).resolve())
    planned = []
    for i, step in enumerate(steps, 1):
        where = f"{source}: step {i} ({step.command})"
        path, cmd = resolve_command(root, step.command, where=where)
        planned.append((step, [*path, *step_args(cmd, step.options, where=where)]))
        if path == ["run"] and isinstance(step.options.get("pipeline"), str):
            _check_nested(root, step.options["pipeline"], chain, where=where)
    return planned


def _check_nested(root: Any, nested: str, chain: tuple[Path, ...], *, where: str) -> None:
    target = Path(nested).resolve()
    if target in chain:
        loop = " -> ".join(str(p) for p in (*chain[chain.index(target) :], target))
        raise InputError(f"{where}: runs a pipeline that is already running ({loop}); a pipeline cannot run itself")
    plan_pipeline(root, load_pipeline(nested), source=nested, running=chain)


def format_args(args: list[str]) -> str:
    return "medsyn " + " ".join(shlex.quote(a) for a in args)
