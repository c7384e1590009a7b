"""The ``medsyn`` command as users run it: the console script that installing the package put beside this
interpreter (``.venv/bin/medsyn``), not ``python -m medsyn``, so that tests also cover the entry point itself.

    subprocess.run([*MEDSYN, "--version"], capture_output=True, text=True)

An editable install runs this checkout's code; with ``PYTHONPATH`` set (a git worktree), the script imports from
there first.
"""

from __future__ import annotations

import sys
from pathlib import Path

INSTALLED = Path(sys.executable).parent / "medsyn"
MEDSYN = [str(INSTALLED)]
