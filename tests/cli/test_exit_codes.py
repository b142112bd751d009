"""Exit codes mean the same for every command, and README's table says what each means:
0 done, 1 failed, 2 usage or settings, 3 input refused, 4 busy (another writer), 130 interrupted."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import ledger.errors as errors
from ledger.cli.app import EXIT_REJECTED
from ledger.cli.main import app
from tests.support.cli import StrictRunner

runner = StrictRunner()
README = Path(__file__).parents[2] / "README.md"
LEDGER = str(Path(sys.executable).parent / "ledger")


def documented() -> dict[int, str]:
    """The README's table of exit codes: code -> meaning."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("Exit codes, the same for every command"):]
    table = table[: table.index("\n\n", table.index("| code"))]
    return {int(code): meaning for code, meaning in re.findall(r"^\| (\d+) \| (.+) \|$", table, re.M)}


def test_the_readme_documents_every_exit_code_the_errors_use() -> None:
    codes = documented()
    assert set(codes) == {0, 1, 2, 3, 4, 130}
    used = {cls.exit_code for cls in vars(errors).values()
            if isinstance(cls, type) and issubclass(cls, errors.LedgerError)}
    assert used | {EXIT_REJECTED} <= set(codes)
    assert (errors.LedgerError.exit_code, errors.SettingsError.exit_code, EXIT_REJECTED,
            errors.WriterBusyError.exit_code) == (1, 2, 3, 4)
    assert codes[2].startswith("usage") and codes[3].startswith("some input was refused")


def test_an_unknown_option_or_command_is_a_usage_error_exit_2() -> None:
    for args in (["--bogus"], ["status", "--bogus"], ["no-such-command"], ["dlq", "show"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output


def test_the_installed_command_exits_2_on_an_unknown_option() -> None:
    done = subprocess.run([LEDGER, "status", "--bogus"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "No such option: --bogus" in done.stderr and "Traceback" not in done.stderr


def test_query_without_read_models_fails_with_exit_1_and_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "nothing-yet"
    result = runner.invoke(app, ["query", "SELECT 1", "--data-dir", str(data)])
    assert result.exit_code == 1
    assert "no read models" in result.stderr and "ledger project" in result.stderr
    assert not data.exists()


def test_a_refused_record_exits_3_and_a_bad_setting_exits_2(tmp_path: Path) -> None:
    refused = runner.invoke(app, ["record", "[1]", "--no-project", "--data-dir", str(tmp_path)])
    assert refused.exit_code == 3
    bad_setting = runner.invoke(app, ["status", "--store", "mysql://x", "--data-dir", str(tmp_path)])
    assert bad_setting.exit_code == 2


def test_ctrl_c_during_a_command_exits_130(tmp_path: Path) -> None:
    """typer ends a command that a KeyboardInterrupt reaches with 130 (click alone: "Aborted!", 1)."""
    data = str(tmp_path / "d")
    contact = {"type": "ContactLogged", "customer_id": "C1", "occurred_at": "2026-01-01T00:00:00Z",
               "source": "desk", "contact_id": "K1", "channel": "phone", "direction": "inbound"}
    assert runner.invoke(app, ["record", json.dumps(contact), "--data-dir", data]).exit_code == 0
    endless = "SELECT count(*) FROM range(100000000000) a, range(100000000000) b"
    process = subprocess.Popen([LEDGER, "query", endless, "--data-dir", data], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # past the imports (a Ctrl-C there is 130 too) and into the query
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
