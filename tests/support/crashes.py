"""SIGKILL a command mid-stream, however fast or slow this machine is today."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def kill_when(command: list[str], env: dict[str, str], ready: Callable[[], bool], timeout_s: float = 60) -> None:
    """Start `command`, SIGKILL it as soon as `ready()` (or it exits, or `timeout_s` passes)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def kill_mid_stream(
    command: list[str], env: dict[str, str], position: Callable[[], int], end: int, *, wal: Path,
    kills: int = 2, rounds: int = 20,
) -> list[int]:
    """Start `command` and SIGKILL it as soon as it has committed a transaction, again and
    again, until it has been killed `kills` times with `position()` strictly between 0 and
    `end`; return every position seen.

    For DuckDB writers, whose position cannot be read while they hold the file's lock: the
    write-ahead log `wal` growing says a transaction committed (the projector checkpoints
    only when it publishes). `position()` opens the file after each kill, which replays and
    checkpoints that log, so the next run starts with it empty. No delay is guessed: the
    kill follows the commit, whatever the machine's speed.
    """
    seen: list[int] = []
    for _ in range(rounds):
        if sum(0 < p < end for p in seen) >= kills:
            break
        at_start = _size(wal)
        kill_when(command, env, lambda at_start=at_start: _size(wal) > at_start)
        seen.append(position())
        if seen[-1] >= end:
            break
    return seen


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
