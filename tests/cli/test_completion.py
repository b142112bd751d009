"""Shell completion (README, "Shell completion"): typer's --install-completion and
--show-completion, answered through `_LEDGER_COMPLETE` by the installed `ledger` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ledger.cli.main import app
from tests.support.cli import StrictRunner

LEDGER = str(Path(sys.executable).parent / "ledger")


def complete(words: str, shell: str = "bash") -> subprocess.CompletedProcess[str]:
    """What the shell's completion function gets back for the command line `words`, the cursor
    on its last word. The variables go to the child only; this process's stay as they are."""
    env = {**os.environ, "_LEDGER_COMPLETE": f"complete_{shell}", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - 1)}
    return subprocess.run([LEDGER], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_command_completes() -> None:
    done = complete("ledger qu")
    assert (done.returncode, done.stdout.split(), done.stderr) == (0, ["query"], "")


def test_a_subcommand_and_an_option_complete() -> None:
    assert complete("ledger dlq pa").stdout.split() == ["parked"]
    assert complete("ledger status --js").stdout.split() == ["--json"]


def test_the_completion_script_can_be_shown_for_a_shell() -> None:
    done = subprocess.run([LEDGER, "--show-completion", "bash"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "_LEDGER_COMPLETE=complete_bash" in done.stdout and "complete " in done.stdout


def test_help_lists_the_completion_options() -> None:
    shown = StrictRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "--install-completion" in shown.stdout and "--show-completion" in shown.stdout
