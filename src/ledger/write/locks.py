"""One holder at a time: the locks that make a second writer fail fast instead of racing.

Two kinds, both released by the operating system or the server when the holder dies (a kill -9
leaves nothing stale to clean up):

- `exclusive(path)`: a lock file, with ``flock``. Never POSIX ``fcntl`` record locks: those
  belong to the process and vanish when *any* descriptor of the file is closed, which is how
  DuckDB's own lock was lost once the projector copied its file to publish it.
- `ledger.write.store.store_lock(store_url, name)`: for a part that writes to the event
  store from anywhere (the relay of one topic): a PostgreSQL session advisory lock held on
  its own connection, or, for SQLite, a lock file next to the store (built on `exclusive`).

The holder's pid and command are written beside the lock (``<lock>.holder``) so the refusal
can say who holds it; that note is only read while the lock is held, so a stale one is never
shown.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger.errors import StoreError, WriterBusyError
from ledger.text import printable

_held: dict[Path, int] = {}
_held_guard = threading.Lock()


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold the lock file at `path` for the block, or raise WriterBusyError at once.

    `what` names the thing guarded, for the message ("data directory /data"). Re-entrant
    within a process (a command that records and then projects takes it once for both): a
    flock is per open file, so a second open in the same process would refuse itself.
    """
    key = path.absolute()
    with _held_guard:
        if _held.get(key):
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    with exclusive_once(path, what):
        with _held_guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_guard:
                _held.pop(key, None)


@contextmanager
def exclusive_once(path: Path, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create the lock file {path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreError(f"cannot lock {path}: {exc.strerror}") from exc
            raise WriterBusyError(f"{what} {_holder(path)}; wait for it to finish or stop it first") from None
        holder = _holder_path(path)
        try:
            holder.write_text(f"{os.getpid()} {command_line()}\n")
        except OSError:
            pass  # the note is a courtesy; the lock is what counts
        try:
            yield
        finally:
            holder.unlink(missing_ok=True)
    finally:
        os.close(fd)  # releases the flock


@contextmanager
def waiting(path: Path, timeout_s: float | None = None) -> Iterator[None]:
    """Hold the lock file at `path` for the block, waiting for its holder if there is one
    (for short critical sections, such as creating a store's tables); with `timeout_s`, a
    StoreError after waiting that long (a holder that is stuck, not one that died: a dead
    one's lock is gone with it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create the lock file {path}: {exc.strerror}") from exc
    try:
        if timeout_s is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            _flock_within(fd, path, timeout_s)
        yield
    finally:
        os.close(fd)


def _flock_within(fd: int, path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreError(f"cannot lock {path}: {exc.strerror}") from exc
        if time.monotonic() > deadline:
            raise StoreError(f"{path} has been held by another process for {timeout_s:g} s; is one stuck?")
        time.sleep(pause)
        pause = min(pause * 2, 0.005)  # short: a writer between two turns must not starve this one


def _holder_path(path: Path) -> Path:
    return path.with_name(path.name + ".holder")


def _holder(path: Path) -> str:
    try:
        pid, _, command = _holder_path(path).read_text().strip().partition(" ")
    except OSError:
        return "is held by another process"
    return f"is held by another process (pid {pid}: {command})" if pid else "is held by another process"


def holder_note() -> str:
    """How a lock's holder names itself: ``pid 123: ledger relay --once``."""
    return f"pid {os.getpid()}: {command_line()}"


def command_line() -> str:
    """Who holds the lock, for the note: the program and its first two arguments, shortened
    and printable (an argument may carry bytes that are not UTF-8, or terminal escapes)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return printable(" ".join([name, *sys.argv[1:3]])[:200])
