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


_SHIM = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as peak:
    peak.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs the measured command as its child and writes its peak memory. Linux carries the peak
of the memory a process had when it forked, or of the parent it shared it with, across exec
into the child's own: measured straight from this process, a command run after the Kafka
rows showed this process's 643 MiB as its own. The shim, a bare interpreter, is small."""


def measured(args: list[str], *, env: dict[str, str] | None = None) -> Measured:
    """Run `args` to the end; fail loudly (with its output) if it fails. Returns its wall time
    and its own peak resident memory (see `_SHIM`)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".peak") as peak:
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-S", "-c", _SHIM, peak.name, *args], stdout=out, stderr=err,
                               cwd=REPO, env={**os.environ, **(env or {})})
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        kib = Path(peak.name).read_text() or "0"
    if code != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({code}):\n{stdout}\n{stderr[-3000:]}")
    return Measured(seconds, int(kib) / 1024, stdout)


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
