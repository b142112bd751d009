"""The install maps the top-level folders into the `ledger` package, and the code stays clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("bare", ["cli", "projections", "schemas"])
def test_no_bare_top_level_module_is_installed(bare: str, tmp_path: Path) -> None:
    # From another folder, so that only what the install put on the path counts.
    probe = (f"import importlib.util as u; "
             f"print(u.find_spec({bare!r}) is None, u.find_spec('ledger.{bare}') is not None)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.stdout.split() == ["True", "True"], result.stdout + result.stderr


def test_the_code_passes_ruff() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "src", "cli", "tests", "benchmarks", "projections"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
