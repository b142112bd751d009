"""`ledger export`: the read models as Parquet or CSV files, one consistent snapshot.

Every table is written from one transaction on one read-only connection to the published
copy (or to an as-of copy of it), so the files agree with each other and with the position in
the manifest. DuckDB writes the files itself (COPY): nothing passes through Python rows.

The files go to a scratch folder inside the target first; each is moved into place only when
all of them are written, and the manifest last, so a reader who trusts the manifest never
reads a half-written export.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ledger.errors import NotPublishedError, ReadModelError, SettingsError
from ledger.projection import lake
from ledger.projection.answers import refuse_inside
from ledger.projection.catalogue import BOOKKEEPING_TABLES
from ledger.projection.lake import Lake
from ledger.projection.query import SANDBOX

EXPORT_FORMATS = ("parquet", "csv")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Exported:
    table: str
    file: str
    rows: int


def analyst_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables and views an analyst reads, in name order (not the projector's bookkeeping)."""
    names = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "UNION SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND NOT internal "
        "ORDER BY 1"
    ).fetchall()
    return [n for (n,) in names if n not in BOOKKEEPING_TABLES]


def export(path: Path | Lake, tables: list[str], kind: str, target: Path, data_dir: Path) -> dict[str, Any]:
    """Write `tables` (all analyst tables if empty) of the read models at `path` into `target`
    as `kind` files, and a manifest; return the manifest."""
    if kind not in EXPORT_FORMATS:
        raise SettingsError(f"--format {kind}: exports are {' or '.join(EXPORT_FORMATS)}")
    _check_target(target, data_dir)
    if isinstance(path, Path) and not path.exists():
        raise NotPublishedError(f"no read models at {path} yet: run `ledger project` or `ledger demo` first")
    con = _connect(path)
    try:
        known = analyst_tables(con)
        unknown = [t for t in tables if t not in known]
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise SettingsError(f"no read model named {names}; the tables are {', '.join(known)}")
        chosen = list(dict.fromkeys(tables)) or known
        target.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=target))
        try:
            con.execute("BEGIN TRANSACTION")  # one snapshot for every table and the position
            written = [_copy(con, table, kind, scratch) for table in chosen]
            manifest = _manifest(con, kind, written)
            con.execute("COMMIT")
            (target / MANIFEST).unlink(missing_ok=True)  # no manifest over files it does not describe
            for item in written:
                os.replace(scratch / item.file, target / item.file)
            (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            os.replace(scratch / MANIFEST, target / MANIFEST)
        except duckdb.Error as exc:
            raise ReadModelError(f"export failed: {exc}") from exc
        except OSError as exc:
            raise SettingsError(f"cannot write the export to {target}: {exc.strerror or exc}") from exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        con.close()
    return manifest


def _check_target(target: Path, data_dir: Path) -> None:
    refuse_inside(target, data_dir, "--to")
    if target.expanduser().exists() and not target.expanduser().is_dir():
        raise SettingsError(f"--to {target} is a file: give a directory")


def _connect(path: Path | Lake) -> duckdb.DuckDBPyConnection:
    """Read only, no extensions, UTC: the query sandbox's connection, but with files allowed,
    since writing them is the point (only COPY statements of our own run on it)."""
    try:
        if isinstance(path, Lake):
            con = duckdb.connect(config=dict(SANDBOX))
            lake.attach(con, path.settings, read_only=True)
            con.execute(f"USE {lake.LAKE}")
        else:
            con = duckdb.connect(str(path), read_only=True, config=dict(SANDBOX))
        con.execute("SET TimeZone = 'UTC'")
    except duckdb.Error as exc:
        raise ReadModelError(f"cannot open {path}: {exc}") from exc
    return con


def _copy(con: duckdb.DuckDBPyConnection, table: str, kind: str, folder: Path) -> Exported:
    file = f"{table}.{kind}"
    options = "FORMAT parquet, COMPRESSION zstd" if kind == "parquet" else "FORMAT csv, HEADER"
    literal = str(folder / file).replace("'", "''")
    row = con.execute(f"COPY ({_select(con, table, kind)}) TO '{literal}' ({options})").fetchone()
    return Exported(table, file, int(row[0]) if row else 0)


def _select(con: duckdb.DuckDBPyConnection, table: str, kind: str) -> str:
    """Every column of `table`; for Parquet, sums of money exact: DuckDB writes a HUGEINT
    into Parquet as a DOUBLE (17 digits: a sum of 12345678901234567890123 cents would come
    out as 1.2345678901234568e+22), so HUGEINTs, nested ones too, go as DECIMAL(38,0)."""
    if kind != "parquet":
        return f'SELECT * FROM "{table}"'
    columns = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND table_name = ? ORDER BY column_index", [table]
    ).fetchall()
    listed = []
    for name, data_type in columns:
        quoted = '"' + name.replace('"', '""') + '"'
        exact = re.sub(r"\bHUGEINT\b", "DECIMAL(38,0)", data_type)
        listed.append(quoted if exact == data_type else f"CAST({quoted} AS {exact}) AS {quoted}")
    return f'SELECT {", ".join(listed)} FROM "{table}"'


def _manifest(con: duckdb.DuckDBPyConnection, kind: str, written: list[Exported]) -> dict[str, Any]:
    state = dict(con.execute("SELECT key, value FROM projector_state").fetchall())
    positions = con.execute("SELECT source, key, position FROM projector_positions ORDER BY 1, 2").fetchall()
    return {
        "format": kind,
        "exported_at": datetime.now(UTC).isoformat(),
        "as_of": state.get("as_of"),
        "known_at": state.get("known_at"),
        "published_at": state.get("published_at"),
        "positions": [{"source": s, "partition": k, "position": p} for s, k, p in positions],
        "tables": {item.table: {"file": item.file, "rows": item.rows} for item in written},
    }
