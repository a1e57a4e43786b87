"""The package's layering, as pyproject's import-linter contracts state it: imports go down only and
no package's modules import each other in a cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def _lint(project: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(project)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_package_keeps_its_layers():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(ROOT / "cultura", tmp_path / "cultura", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    errors = tmp_path / "cultura" / "errors.py"
    errors.write_text(errors.read_text(encoding="utf-8") + "\nimport cultura.config  # noqa: E402,F401\n",
                      encoding="utf-8")
    result = _lint(tmp_path)
    assert result.returncode == 1
    assert "cultura.errors -> cultura.config" in result.stdout
