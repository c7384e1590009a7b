"""Tests run the CLI as users run it: the installed ``medsyn`` console script (medsyn.testing.commands.MEDSYN)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import medsyn
from medsyn.testing.commands import INSTALLED, MEDSYN

TESTS = Path(__file__).parent


def test_the_installed_script_runs_this_checkout() -> None:
    r = subprocess.run([*MEDSYN, "--version"], capture_output=True, text=True, timeout=120)
    assert INSTALLED.is_file() and r.returncode == 0, r.stderr
    assert medsyn.__version__ in r.stdout


def test_no_test_runs_the_cli_as_a_python_module() -> None:
    # `python -m medsyn` skips the entry point users run; `accelerate launch ... -m medsyn` is how a multi-GPU
    # fine-tune is started, so a module run after a launcher (`[*cmd, "-m", "medsyn"`) stays allowed.
    direct = re.compile(r'sys\.executable\),?\s*"-m",\s*"medsyn"|\[sys\.executable,\s*"-m",\s*"medsyn"')
    offenders = [p.name for p in sorted(TESTS.glob("test_*.py")) if direct.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
