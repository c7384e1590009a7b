"""The package's build metadata: what a fresh install's build backend reads from pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def test_build_backend_range_is_pinned_and_supports_spdx_licences() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    (setuptools,) = [r for r in requires if r.startswith("setuptools")]
    spec = SpecifierSet(setuptools.removeprefix("setuptools"))
    assert "77.0" in spec and "76.9" not in spec  # 77 is the first to read `license = "MIT"` and license-files
    assert any(s.operator == "<" for s in spec)  # an upper bound: no untested major builds a fresh install


def test_metadata_builds_without_a_deprecation_warning(tmp_path: Path) -> None:
    # A table `project.license` makes setuptools warn that such builds stop being supported on 2027-02-18.
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "medsyn").mkdir()
    (tmp_path / "medsyn" / "__init__.py").write_text("")
    code = "import setuptools.build_meta as b; print(b.prepare_metadata_for_build_wheel('meta'))"
    (tmp_path / "meta").mkdir()
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Deprecat" not in r.stderr, r.stderr
    metadata = (tmp_path / "meta" / r.stdout.split()[-1] / "METADATA").read_text()
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
