"""`ledger --version`: the installed distribution's version, for bug reports and scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from ledger import DISTRIBUTION, version
from ledger.cli.main import app
from tests.support.cli import StrictRunner

runner = StrictRunner()
LEDGER = str(Path(sys.executable).parent / "ledger")
"""The console script pip installed beside this interpreter: what a person runs."""


def test_the_version_is_the_installed_distributions() -> None:
    assert DISTRIBUTION == "customer-ledger"  # the name in pyproject.toml
    assert version() == metadata.version(DISTRIBUTION) != "unknown"


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flag_prints_the_version_and_exits_0(flag: str) -> None:
    result = runner.invoke(app, [flag])
    assert (result.exit_code, result.stdout) == (0, f"ledger {version()}\n")
    assert result.stderr == ""


def test_version_answers_before_any_command_or_setting_is_looked_at(tmp_path: Path) -> None:
    """Eager: a command after it, or a config file that does not exist, is not even read."""
    result = runner.invoke(app, ["--config", str(tmp_path / "missing.toml"), "-V", "status", "--bogus"])
    assert (result.exit_code, result.stdout) == (0, f"ledger {version()}\n")


def test_the_installed_command_prints_its_version() -> None:
    done = subprocess.run([LEDGER, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"ledger {version()}\n", "")


def test_status_shows_the_version(tmp_path: Path) -> None:
    shown = runner.invoke(app, ["status", "--json", "--data-dir", str(tmp_path / "d")])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["version"] == version()
    assert not (tmp_path / "d").exists()  # status still creates nothing
