"""Analysts' side: read-only connections to the published copy, queries, as-of queries."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from ledger.errors import ReadModelError
from ledger.projection.readmodels import ReadModels
from ledger.settings import Settings


def open_for_reading(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a published read-model file."""
    if not path.exists():
        raise ReadModelError(f"no read models at {path} yet: run `ledger project` or `ledger demo` first")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise ReadModelError(f"cannot open {path}: {exc}") from exc


def query(
    path: Path, sql: str, *, as_of: datetime | None = None, settings: Settings | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run read-only SQL against the published read models; return column names and rows.

    With `as_of`, the published file is copied to a temporary directory, the "as of" models
    are refreshed there for that time (with `settings`), and the query runs on the copy; the
    published file is never changed. Segment membership history in the copy is rewound to
    `as_of`, as a refresh at that time would leave it.
    """
    if as_of is None:
        return _query(path, sql)
    if not path.exists():
        open_for_reading(path)  # raises the "no read models yet" error
    with tempfile.TemporaryDirectory(prefix="ledger-as-of-") as scratch:
        copy = Path(scratch) / path.name
        shutil.copyfile(path, copy)
        with ReadModels(copy, settings=settings) as models:
            models.refresh(as_of)
        return _query(copy, sql)


def _query(path: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    con = open_for_reading(path)
    try:
        try:
            result = con.execute(sql)
        except duckdb.Error as exc:
            raise ReadModelError(f"query failed: {exc}") from exc
        if result.description is None:
            return [], []
        columns = [d[0] for d in result.description]
        return columns, result.fetchall()
    finally:
        con.close()


def state(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM projector_state").fetchall())
