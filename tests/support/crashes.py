"""SIGKILL a command mid-stream, however fast or slow this machine is today."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable


def kill_when(command: list[str], env: dict[str, str], ready: Callable[[], bool], timeout_s: float = 60) -> None:
    """Start `command`, SIGKILL it as soon as `ready()` (or it exits, or `timeout_s` passes)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def kill_mid_stream(
    command: list[str], env: dict[str, str], position: Callable[[], int], end: int, kills: int = 2
) -> list[int]:
    """Start `command` and SIGKILL it after a delay, again and again, until it has been killed
    `kills` times with `position()` strictly between 0 and `end`; return every position seen.

    For processes whose progress cannot be watched while they run (DuckDB's writer lock). The
    delay grows while the process had not yet stored anything (a loaded machine starts Python
    slowly) and creeps on otherwise, so the kills land at different points.
    """
    seen: list[int] = []
    delay = 1.0
    while sum(0 < p < end for p in seen) < kills and delay < 60:
        until = time.monotonic() + delay
        kill_when(command, env, lambda until=until: time.monotonic() >= until)
        seen.append(position())
        if seen[-1] >= end:
            break
        delay = delay * 1.5 if seen[-1] == 0 else delay + 0.3
    return seen
