"""`ledger serve` as a real process: its stderr read line by line in a thread, its HTTP
endpoint asked over real sockets, and a wait for any condition with a generous deadline."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from ledger.settings import Settings

DEADLINE_S = 60.0
"""Far above what any wait here takes on an idle machine (a few seconds): a loaded CI box
must not fail a correct test."""


def wait_for(condition: Callable[[], Any], timeout_s: float = DEADLINE_S, what: str = "a condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def serve_environment(settings: Settings, **variables: str) -> dict[str, str]:
    """The environment of a serve on `settings`' data directory and store (no LEDGER_* of the
    test run's own leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATA_DIR"] = str(settings.data_dir)
    if settings.store:
        env["LEDGER_STORE"] = settings.store.url
    env.update(variables)
    return env


class Served:
    """A running `ledger serve`; `stop()` sends SIGTERM and waits for its exit code."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.process = subprocess.Popen([sys.executable, "-m", "ledger.cli", "serve", *args], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def records(self) -> list[dict[str, Any]]:
        """The stderr lines as JSON (with --log-format json every one is an object)."""
        return [json.loads(line) for line in list(self.lines)]

    def port(self) -> int:
        """The endpoint's port, as serve logged it (JSON logs)."""
        found = wait_for(lambda: next((r["port"] for r in self.records if "port" in r), None),
                         what="the endpoint's log line")
        return int(found)

    def stop(self, timeout_s: float = DEADLINE_S) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=timeout_s)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a GET on the local endpoint; a 503 is an answer, not an error."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus' text format, or None when it is not there."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        if _normal(sample) == wanted:
            return float(value)
    return None


def _normal(sample: str) -> str:
    if "{" not in sample:
        return sample
    name, _, rest = sample.partition("{")
    pairs = sorted(p for p in rest.rstrip("}").split(",") if p)
    return name + "{" + ",".join(pairs) + "}"


def port_is_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        return sock.connect_ex(("127.0.0.1", port)) != 0
