"""One holder at a time: a second one is refused at once, naming the first; a dead holder
leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.errors import WriterBusyError
from ledger.write.locks import exclusive
from ledger.write.store import store_lock

HOLD = """
import sys, time
from pathlib import Path
from ledger.write.locks import exclusive
with exclusive(Path(sys.argv[1]), "the thing"):
    print("held", flush=True)
    sys.stdin.read()
"""


def _holder(path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    lock = tmp_path / "writer.lock"
    first = _holder(lock)
    try:
        with pytest.raises(WriterBusyError, match=rf"the thing is held by another process \(pid {first.pid}"):
            with exclusive(lock, "the thing"):
                pass
    finally:
        first.communicate("")
    with exclusive(lock, "the thing"):  # free again once the first let go
        pass


def test_a_holder_killed_with_sigkill_leaves_the_lock_free(tmp_path: Path) -> None:
    lock = tmp_path / "writer.lock"
    first = _holder(lock)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    with exclusive(lock, "the thing"):
        assert lock.exists()


def test_closing_another_descriptor_of_the_file_keeps_the_lock(tmp_path: Path) -> None:
    """The way DuckDB's own lock was lost: a copy of the file opened and closed it."""
    lock = tmp_path / "writer.lock"
    with exclusive(lock, "the thing"):
        lock.read_bytes()
        probe = subprocess.run(
            [sys.executable, "-c", HOLD, str(lock)], input="", capture_output=True, text=True
        )
        assert probe.returncode != 0 and "WriterBusyError" in probe.stderr


def test_the_store_lock_is_one_per_name(settings) -> None:
    with store_lock(settings.store_url, "relay:t", "the relay of t"):
        with pytest.raises(WriterBusyError, match="the relay of t"):
            with store_lock(settings.store_url, "relay:t", "the relay of t"):
                pass
        with store_lock(settings.store_url, "relay:other", "the relay of other"):
            pass
    with store_lock(settings.store_url, "relay:t", "the relay of t"):
        pass


def test_the_holder_may_take_its_own_lock_again(tmp_path: Path) -> None:
    lock = tmp_path / "writer.lock"
    with exclusive(lock, "the thing"):
        with exclusive(lock, "the thing"):
            pass
        probe = subprocess.run([sys.executable, "-c", HOLD, str(lock)], input="", capture_output=True, text=True)
        assert probe.returncode != 0  # still held after the inner block
