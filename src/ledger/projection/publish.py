"""The consistent read-only copy analysts query.

DuckDB allows one writing process per file, so readers never open the projector's file:
they read a copy, swapped in with an atomic rename so a reader sees the old copy or the new
one, never half of either.
"""

from __future__ import annotations

import os
import shutil
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
