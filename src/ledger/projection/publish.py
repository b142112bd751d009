"""The consistent read-only copy analysts query.

DuckDB allows one writing process per file, so readers never open the projector's file:
they read a copy, swapped in with an atomic rename so a reader sees the old copy or the new
one, never half of either.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb


def publish_copy(con: duckdb.DuckDBPyConnection, path: Path, target: Path) -> None:
    """Copy the file `con` writes at `path` to `target`, atomically.

    The checkpoint first moves the WAL into the file, since the copy takes the file alone.
    """
    con.execute("CHECKPOINT")
    scratch = target.with_name(target.name + ".tmp")
    shutil.copyfile(path, scratch)
    os.replace(scratch, target)


AS_OF_PREFIX = ".as-of-"
"""Scratch copies of `ledger query --as-of`: ``.as-of-<pid>-*`` in the data directory."""


@contextlib.contextmanager
def scratch_folder(data_dir: Path) -> Iterator[Path]:
    """A folder for a temporary copy of the read models, in the data directory (named after
    this process) and removed after use; copies left by processes that were killed are
    removed first (`remove_abandoned_copies`)."""
    remove_abandoned_copies(data_dir)
    try:
        folder = Path(tempfile.mkdtemp(prefix=f"{AS_OF_PREFIX}{os.getpid()}-", dir=data_dir))
    except OSError:  # a data directory this reader may not write: the system's temporary one
        folder = Path(tempfile.mkdtemp(prefix=f"ledger{AS_OF_PREFIX}{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_abandoned_copies(data_dir: Path) -> None:
    """Remove the scratch copies of processes no longer running (killed, say), in the data
    directory and the system's temporary one: they hold read models as they were, personal data
    of customers erased since included."""
    for where, prefix in ((data_dir, AS_OF_PREFIX), (Path(tempfile.gettempdir()), f"ledger{AS_OF_PREFIX}")):
        with contextlib.suppress(OSError):
            for folder in where.glob(f"{prefix}*"):
                pid = folder.name[len(prefix):].split("-", 1)[0]
                if pid.isdigit() and not _running(int(pid)):
                    shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
