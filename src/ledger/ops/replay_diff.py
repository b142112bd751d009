"""`ledger replay --dry-run`: rebuild into a scratch file and say what a replay would change.

The rebuild is the replay's own (same source, same projector, same batches), into a folder of
its own, so it takes no writer lock: a running projector goes on, and the live files are
never touched. It is compared with the published copy, the consistent snapshot of the live
read models; by default at the published copy's own "as of" time, so that the difference is
what the rebuild changes and not what time passing does.

Per table: rows now, rows after, and rows added, removed and changed, matched by the table's
primary key or the key its description names (projections/descriptions.toml); a table with
neither counts rows that are only on one side, as added or removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from ledger.errors import NotPublishedError, ReadModelError
from ledger.ops.projecting import rebuild
from ledger.projection import lake
from ledger.projection.catalogue import BOOKKEEPING_TABLES
from ledger.projection.descriptions import load
from ledger.projection.engine import Progress
from ledger.projection.lake import Lake
from ledger.projection.publish import scratch_folder
from ledger.projection.query import open_for_reading, published
from ledger.settings import Settings
from ledger.write.application import Ledger

NOT_COMPARED = BOOKKEEPING_TABLES | {"ledger_position"}


@dataclass(frozen=True)
class TableDiff:
    table: str
    rows_now: int
    rows_after: int
    added: int
    removed: int
    changed: int | None
    """None for a table without a primary key, or whose columns changed."""
    note: str = ""


@dataclass(frozen=True)
class DryRun:
    as_of: datetime
    events: int
    tables: list[TableDiff]

    @property
    def unchanged(self) -> bool:
        return all(t.added == t.removed == 0 and not t.changed and not t.note for t in self.tables)


def published_as_of(settings: Settings) -> datetime | None:
    """The "as of" time of the published copy (or lake), or None if there is none yet."""
    try:
        con = open_for_reading(published(settings))
    except NotPublishedError:
        return None
    with con:
        row = con.execute("SELECT value FROM projector_state WHERE key = 'as_of'").fetchone()
    return datetime.fromisoformat(row[0]) if row else None


def dry_run(settings: Settings, as_of: datetime, *, ledger: Ledger | None = None,
            progress: Progress | None = None) -> DryRun:
    """Rebuild every read model as `replay` would, into scratch, and compare with the published copy."""
    with scratch_folder(settings.data_dir) as folder:
        rebuilt = folder / "readmodels.dry-run.duckdb"
        stats = rebuild(settings, rebuilt, as_of, ledger=ledger, progress=progress)
        return DryRun(as_of, stats.read, compare(published(settings), rebuilt))


def compare(now: Path | Lake, after: Path) -> list[TableDiff]:
    """What `after` changes in `now`, table by table (base tables, not views or bookkeeping)."""
    con = duckdb.connect()
    try:
        if isinstance(now, Lake):
            lake.attach(con, now.settings, read_only=True, name="now")
        elif now.exists():
            con.execute(f"ATTACH '{_literal(now)}' AS now (READ_ONLY)")
        else:
            con.execute("ATTACH ':memory:' AS now")
        con.execute(f"ATTACH '{_literal(after)}' AS after (READ_ONLY)")
        return [_table(con, name) for name in _tables(con) if name not in NOT_COMPARED]
    except duckdb.Error as exc:
        raise ReadModelError(f"cannot compare the rebuilt read models with {now}: {exc}") from exc
    finally:
        con.close()


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT DISTINCT table_name FROM duckdb_tables() WHERE database_name IN ('now', 'after') ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


def _columns(con: duckdb.DuckDBPyConnection, database: str, table: str) -> list[str]:
    return [c for (c,) in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND table_name = ? ORDER BY column_index",
        [database, table]).fetchall()]


def _key(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The primary key, or the key its description names (a table rebuilt each refresh has none)."""
    row = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = 'after' AND table_name = ? "
        "AND constraint_type = 'PRIMARY KEY'", [table]).fetchone()
    return list(row[0]) if row else list(load().get(table, {}).get("key", []))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _table(con: duckdb.DuckDBPyConnection, table: str) -> TableDiff:
    before, later = _columns(con, "now", table), _columns(con, "after", table)
    now, after = f"now.{_quoted(table)}", f"after.{_quoted(table)}"
    rows_now = _count(con, f"SELECT count(*) FROM {now}") if before else 0
    rows_after = _count(con, f"SELECT count(*) FROM {after}") if later else 0
    if not before or not later:
        return TableDiff(table, rows_now, rows_after, rows_after, rows_now, None,
                         "a new table" if later else "a table the rebuild does not have")
    if before != later:
        return TableDiff(table, rows_now, rows_after, 0, 0, None, "its columns changed")
    key = _key(con, table)
    gained = f"(SELECT * FROM {after} EXCEPT ALL SELECT * FROM {now})"
    lost = f"(SELECT * FROM {now} EXCEPT ALL SELECT * FROM {after})"
    if not key:
        return TableDiff(table, rows_now, rows_after, _count(con, f"SELECT count(*) FROM {gained}"),
                         _count(con, f"SELECT count(*) FROM {lost}"), None)

    def matched(other: str) -> str:
        same = " AND ".join(f"o.{_quoted(k)} IS NOT DISTINCT FROM d.{_quoted(k)}" for k in key)
        return f"EXISTS (SELECT 1 FROM {other} o WHERE {same})"

    added = _count(con, f"SELECT count(*) FROM {gained} d WHERE NOT {matched(now)}")
    changed = _count(con, f"SELECT count(*) FROM {gained} d WHERE {matched(now)}")
    removed = _count(con, f"SELECT count(*) FROM {lost} d WHERE NOT {matched(after)}")
    return TableDiff(table, rows_now, rows_after, added, removed, changed)
