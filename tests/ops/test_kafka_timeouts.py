"""A broker that is not there: every command that needs Kafka fails within about
LEDGER_KAFKA_TIMEOUT, with one line naming the servers, and none of the client's own noise."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.settings import Settings
from tests.support.broker import free_port
from tests.support.serving import serve_environment


@pytest.mark.parametrize("command", [["status"], ["topics", "create"], ["relay", "--once"], ["serve"]])
def test_a_dead_broker_fails_the_command_fast_with_one_clear_message(command: list[str], tmp_path: Path) -> None:
    servers = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = serve_environment(Settings(data_dir=tmp_path / "data"), LEDGER_KAFKA_TIMEOUT="2",
                            LEDGER_METRICS_PORT="off")
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "ledger.cli", *command, "--kafka", servers], env=env,
                            capture_output=True, text=True, timeout=120)
    took = time.monotonic() - began
    assert result.returncode == 1, result.stderr
    assert f"cannot reach Kafka at {servers} within 2 s (LEDGER_KAFKA_TIMEOUT)" in result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors[-1].startswith("error: cannot reach Kafka")
    if command != ["serve"]:  # serve also logs what it starts; the others say only the error
        assert result.stderr.strip().count("\n") == 0, result.stderr
    assert took < 20  # the 30 s of kafka-python's default would fail this
