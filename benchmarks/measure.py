"""Running one measured command: its wall time and its own peak memory, from the kernel."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LEDGER = str(BIN / "ledger")


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mib: float
    stdout: str

    def rate(self, events: int) -> float:
        return events / self.seconds


def measured(args: list[str], *, env: dict[str, str] | None = None) -> Measured:
    """Run `args` to the end; fail loudly (with its output) if it fails.

    ``os.wait4`` gives the child's own peak resident memory, not the largest of every child
    this process ran (which is what ``RUSAGE_CHILDREN`` keeps)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(args, stdout=out, stderr=err, cwd=REPO, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({code}):\n{stdout}\n{stderr[-3000:]}")
    return Measured(seconds, usage.ru_maxrss / 1024, stdout)


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
