"""SIGKILL a command mid-stream, however fast or slow this machine is today."""

from __future__ import annotations

import random
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Outcome:
    """How one run of a command ended: SIGKILLed by us, or on its own with `returncode`."""

    killed: bool
    returncode: int
    changes: int
    """State changes seen while it ran."""
    state: Hashable
    """The state last seen: where it was killed."""
    stderr: str
    """The tail of what it wrote on stderr."""


def kill_after_changes(
    command: list[str], env: dict[str, str], state: Callable[[], Hashable], changes: int,
    *, timeout_s: float = 120,
) -> Outcome:
    """Start `command` and SIGKILL it once `state()` has been seen to change `changes` times;
    a command that exits first is left to finish.

    A change is a committed step of the command's work (a store head, a tracking position, a
    write-ahead log that grew), so the kill lands mid-work however fast the machine is: the
    next step is under way. State is sampled every 10 ms; that is how often we look, not a
    guess at how long anything takes. A command that neither changes nor exits within
    `timeout_s` is a hang, and fails the test.
    """
    with tempfile.TemporaryFile() as errors:
        last = state()
        seen = 0
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=errors)
        deadline = time.monotonic() + timeout_s
        while seen < changes and process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise AssertionError(f"{' '.join(command)} hung: no state change in {timeout_s}s")
            time.sleep(0.01)
            now = state()
            if now != last:
                seen, last = seen + 1, now
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        code = process.wait()
        errors.seek(0)
        text = errors.read().decode("utf-8", "replace")[-4000:]
    return Outcome(code == -signal.SIGKILL, code, seen, last, text)


@dataclass
class Part:
    """One command of a pipeline, for `kill_at_random`."""

    name: str
    command: list[str]
    env: dict[str, str]
    state: Callable[[], Hashable]
    """What moves when the command commits a step of its work."""
    kills: int
    """How many times to SIGKILL it mid-work before letting it run to completion."""
    has_work: Callable[[], bool] | None = None
    """Whether a run would find something to do; None: until one run ends on its own."""
    finishes_with: tuple[int, ...] = (0,)
    """The exit codes of a run that ends on its own and well."""
    most_changes: int = 3
    """Kill after 1 to this many state changes: more for a command whose first changes are
    set-up (a projector's migrations), so that most kills land in its work proper."""
    position: Callable[[], int] | None = None
    """How far its work got, asked after each kill (into `killed_at`)."""
    killed: int = 0
    killed_at: list[int] = field(default_factory=list)
    finished: bool = False

    def pending(self) -> bool:
        return self.has_work() if self.has_work is not None else not self.finished


def kill_at_random(parts: list[Part], rng: random.Random, *, timeout_s: float = 120) -> list[tuple[str, Outcome]]:
    """Run the parts again and again, in an order `rng` draws among those with work, each
    SIGKILLed after `rng.randint(1, part.most_changes)` state changes while its `kills` last and
    then run to completion, until none has work left; return every run.

    A run that ends on its own with an exit code other than its `finishes_with` (a restart
    refused, a traceback) fails at once with its stderr, as does a part that ends well twice
    in a row without a change while it still says it has work (it would loop forever).
    """
    runs: list[tuple[str, Outcome]] = []
    idle: dict[str, int] = {}
    most_runs = 4 * sum(part.kills for part in parts) + 20 * len(parts)
    while pending := [part for part in parts if part.pending()]:
        if len(runs) >= most_runs:
            raise AssertionError(f"still work left after {len(runs)} runs: {[p.name for p in pending]}")
        to_kill = [part for part in pending if part.killed < part.kills]
        part = rng.choice(to_kill or pending)
        changes = rng.randint(1, part.most_changes) if part.killed < part.kills else 10**9
        outcome = kill_after_changes(part.command, part.env, part.state, changes, timeout_s=timeout_s)
        runs.append((part.name, outcome))
        if outcome.killed:
            part.killed += 1
            if part.position is not None:
                part.killed_at.append(part.position())
            continue
        if outcome.returncode not in part.finishes_with:
            raise AssertionError(
                f"{part.name} (run {len(runs)}, after {part.killed} kills) exited "
                f"{outcome.returncode}:\n{outcome.stderr}"
            )
        part.finished = True
        idle[part.name] = idle.get(part.name, 0) + 1 if outcome.changes == 0 else 0
        if idle[part.name] >= 2 and part.pending():
            raise AssertionError(f"{part.name} ends without doing anything, yet still has work")
    return runs
