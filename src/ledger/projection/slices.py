"""Partition slices in the lake: what projectors sharing the ledger topic write.

A member of the projectors' consumer group (ops/group.py) keeps one working file per Kafka
partition it owns, filled by the projector engine from that partition alone: the same models,
SQL and transactions as a single projector. It publishes each file as that partition's
*slice*: every table's rows, tagged with the partition (`PARTITION`), in the lake's schema
``slices``, replaced in one lake transaction together with the partition's positions (rows of
``projector_positions``). The partition's next owner starts from its slice (`restore`), so a
member killed loses nothing the lake holds, and nothing is applied twice.

A customer's events all go to one partition (the ledger topic is keyed by customer), so each
per-customer table is the union of its slices. What spans customers is not: RFM ranks every
customer, segment rules read anything, and a day's satisfaction counts come from every
partition. So one member at a time (ops/group.py) combines: it copies every slice into one
file (`combine_into`: a model's ``-- partial:`` tables through its ``combine`` section), runs
the refresh there as a single projector would, and publishes the result as lake.py does.
Analysts read only that; the slices schema is not theirs (lake.READABLE_SCHEMAS).
"""

from __future__ import annotations

import contextlib
import time

import duckdb

from ledger.errors import ReadModelError
from ledger.projection import lake
from ledger.projection.catalogue import Model
from ledger.settings import Settings

SLICES = "slices"
PARTITION = "_partition"
"""The column of every slice table naming the Kafka partition its row came from."""
FORGET = "forget_requests"
"""A slices table: partitions whose slice had an erasure, until a combine forgot it in the
analysts' tables too."""
CONFLICT_RETRIES = 8
"""Lake commits that collide with another member's are tried again this often."""
STATE_KEPT = "source_identity:%"
"""The projector_state keys a combined file takes from the slices (the topic's id); the rest
(erasure marks, the segment history's mark) belong to each partition's own file."""


class SliceMovedError(ReadModelError):
    """The lake's slice of a partition is ahead of this member's file: another member owns the
    partition now (a rebalance this member has not heard of yet)."""


def positions(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[int, dict[str, int]]:
    """Each partition's positions as its slice in the lake holds them (none: no slice yet)."""
    found: dict[int, dict[str, int]] = {}
    for partition, key, position in _rows(
            con, settings, f"SELECT {PARTITION}, key, position FROM {lake.LAKE}.{SLICES}.projector_positions"):
        found.setdefault(partition, {})[key] = position
    return found


def erasures_waiting(con: duckdb.DuckDBPyConnection, settings: Settings) -> list[tuple[int, object]]:
    """The erasures published into slices and not yet combined: (partition, when), oldest first."""
    return [tuple(row) for row in _rows(
        con, settings, f"SELECT partition, requested_at FROM {lake.LAKE}.{SLICES}.{FORGET} ORDER BY ALL")]


def _rows(con: duckdb.DuckDBPyConnection, settings: Settings, sql: str) -> list[tuple]:
    """`sql` on the lake; no rows if its slices table is not there yet."""
    lake.attach(con, settings)
    try:
        return con.execute(sql).fetchall()
    except duckdb.CatalogException:
        return []


Published = dict[str, tuple[int, int]]
"""What each table of a working file held when it was last published: (rows, sum of row hashes)."""


def publish(con: duckdb.DuckDBPyConnection, settings: Settings, partition: int, *, forget: bool,
            before: Published | None = None) -> Published:
    """Make the lake's slice of `partition` the file open on `con`, positions with it, in one
    lake transaction; SliceMovedError if the lake's slice is ahead of the file. Tables that hold
    what they held at the publish `before` (this process's last) are not touched: each costs the
    lake's catalog some round trips. With `forget` (the file erased someone), every slice table
    is written anew and every older snapshot and file let go, and the erasure is noted for the
    next combine. Returns what was published."""
    lake.attach(con, settings)
    work = con.execute("SELECT current_database()").fetchall()[0][0]
    ours = lake.columns(con, work)
    now = {table: _fingerprint(con, work, table, [n for n, _ in columns]) for table, columns in ours.items()}
    changed = {t: c for t, c in ours.items() if forget or before is None or before.get(t) != now[t]}
    if before is None:
        _committed(con, lambda: _create_schema(con))
    _committed(con, lambda: _replace(con, work, changed, partition, forget=forget))
    if forget:
        _committed(con, lambda: _rewrite_whole(con))
        lake.let_go(con, settings, forget=True)
    return now


def _fingerprint(con: duckdb.DuckDBPyConnection, work: str, table: str, names: list[str]) -> tuple[int, int]:
    row = lake.row_hash(names)
    found = con.execute(f'SELECT count(*), coalesce(sum({row}::HUGEINT), 0) FROM "{work}".main."{table}"').fetchall()
    return int(found[0][0]), int(found[0][1])


def _create_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {lake.LAKE}.{SLICES}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {lake.LAKE}.{SLICES}.{FORGET} (partition INTEGER, requested_at TIMESTAMP)")


def _replace(con: duckdb.DuckDBPyConnection, work: str, ours: dict[str, list[tuple[str, str]]], partition: int,
             *, forget: bool) -> None:
    """Inside the publish's lake transaction: the fence, then each table of `ours` into its
    slice table (made on first use, partitioned by `PARTITION` so each partition's rows keep to
    files of their own), then the erasure's note."""
    theirs = lake.columns(con, lake.LAKE, SLICES)
    _fence(con, work, partition, theirs)
    for table, columns in ours.items():
        target, source = f'{lake.LAKE}.{SLICES}."{table}"', f'"{work}".main."{table}"'
        if table not in theirs:
            con.execute(f"CREATE TABLE {target} AS SELECT NULL::INTEGER AS {PARTITION}, * FROM {source} LIMIT 0")
            con.execute(f"ALTER TABLE {target} SET PARTITIONED BY ({PARTITION})")
        elif theirs[table] != [(PARTITION, "INTEGER"), *columns]:
            raise ReadModelError(
                f"the lake's slices of {table} have other columns than this version's: every projector of "
                "the group must run the same version of the ledger")
        lake.changed_rows(con, target, source, [name for name, _ in columns], tagged=(PARTITION, partition))
    if forget:
        con.execute(f"INSERT INTO {lake.LAKE}.{SLICES}.{FORGET} VALUES (?, now()::TIMESTAMP)", [partition])


def _fence(con: duckdb.DuckDBPyConnection, work: str, partition: int, theirs: dict[str, object]) -> None:
    """SliceMovedError if the lake's positions of `partition` are past the file's: its slice
    would go backwards, undoing what another member (its owner now) published."""
    if "projector_positions" not in theirs:
        return
    mine = dict(con.execute(f'SELECT key, position FROM "{work}".main.projector_positions').fetchall())
    ahead = con.execute(
        f"SELECT key, position FROM {lake.LAKE}.{SLICES}.projector_positions WHERE {PARTITION} = ?",
        [partition]).fetchall()
    moved = [(key, at) for key, at in ahead if at > mine.get(key, 0)]
    if moved:
        raise SliceMovedError(
            f"partition {partition}'s slice in the lake is at {moved[0][1]}, past this member's "
            f"{mine.get(moved[0][0], 0)}: another member owns it now")


def _rewrite_whole(con: duckdb.DuckDBPyConnection) -> None:
    """Every slice table made again (lake._replace_tables says why: a new table, new statistics)."""
    for table in lake.columns(con, lake.LAKE, SLICES):
        name = f'{lake.LAKE}.{SLICES}."{table}"'
        con.execute(f'CREATE TABLE {lake.LAKE}.{SLICES}."{table}__new" AS SELECT * FROM {name}')
        con.execute(f"DROP TABLE {name}")
        con.execute(f'ALTER TABLE {lake.LAKE}.{SLICES}."{table}__new" RENAME TO "{table}"')
        if table != FORGET:
            con.execute(f"ALTER TABLE {name} SET PARTITIONED BY ({PARTITION})")


def drop_all(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Every slice table dropped, in one lake transaction (a group's replay)."""
    lake.attach(con, settings)

    def drop() -> None:
        for table in lake.columns(con, lake.LAKE, SLICES):
            if table != FORGET:
                con.execute(f'DROP TABLE {lake.LAKE}.{SLICES}."{table}"')

    _committed(con, drop)


def restore(con: duckdb.DuckDBPyConnection, settings: Settings, partition: int) -> bool:
    """Make the file open on `con` the lake's slice of `partition`, in one transaction; False
    (and nothing changed) if the lake has none."""
    lake.attach(con, settings)
    work = con.execute("SELECT current_database()").fetchall()[0][0]
    theirs = lake.columns(con, lake.LAKE, SLICES)
    if "projector_positions" not in theirs:
        return False
    con.execute("BEGIN")
    try:
        if not con.execute(f"SELECT 1 FROM {lake.LAKE}.{SLICES}.projector_positions WHERE {PARTITION} = ?",
                           [partition]).fetchall():
            con.execute("ROLLBACK")
            return False
        for table, columns in lake.columns(con, work).items():
            if theirs.get(table, [(PARTITION, "INTEGER"), *columns]) != [(PARTITION, "INTEGER"), *columns]:
                raise ReadModelError(f"the lake's slices of {table} have other columns than this version's")
            con.execute(f'DELETE FROM "{work}".main."{table}"')
            if table in theirs:
                con.execute(f'INSERT INTO "{work}".main."{table}" SELECT * EXCLUDE ({PARTITION}) '
                            f'FROM {lake.LAKE}.{SLICES}."{table}" WHERE {PARTITION} = ?', [partition])
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    return True


def combine_into(con: duckdb.DuckDBPyConnection, settings: Settings, models: list[Model]) -> None:
    """Fill the new file open on `con` with every partition's slice, in one transaction: the
    union of each table's slices, a model's ``-- partial:`` tables through its combine section.
    A table migrate() seeded (the RFM score map, the migrations) keeps its own rows."""
    lake.attach(con, settings)
    work = con.execute("SELECT current_database()").fetchall()[0][0]
    theirs = lake.columns(con, lake.LAKE, SLICES)
    partial = {table: model for model in models for table in model.partial}
    con.execute("BEGIN")
    try:
        for table, columns in lake.columns(con, work).items():
            if theirs.get(table) != [(PARTITION, "INTEGER"), *columns]:
                raise ReadModelError(
                    f"the lake's slices of {table} are missing or have other columns than this version's: every "
                    "projector of the group must run the same version of the ledger")
            sliced, into = f'{lake.LAKE}.{SLICES}."{table}"', f'"{work}".main."{table}"'
            if table == "projector_state":
                con.execute(f"INSERT INTO {into} SELECT DISTINCT key, value FROM {sliced} WHERE key LIKE ?",
                            [STATE_KEPT])
            elif table in partial:
                con.execute(f'CREATE OR REPLACE TEMP TABLE "partial_{table}" AS '
                            f"SELECT * EXCLUDE ({PARTITION}) FROM {sliced}")
            elif not con.execute(f"SELECT 1 FROM {into} LIMIT 1").fetchall():
                con.execute(f"INSERT INTO {into} SELECT * EXCLUDE ({PARTITION}) FROM {sliced}")
        for model in {id(m): m for m in partial.values()}.values():
            con.execute(model.sections["combine"])
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def forgotten(con: duckdb.DuckDBPyConnection, settings: Settings, erasures: list[tuple[int, object]]) -> None:
    """`erasures` (read before the combine that forgot them) go; one published since stays, for
    the next combine."""
    if erasures:
        lake.attach(con, settings)
        def delete() -> None:
            for partition, at in erasures:
                con.execute(f"DELETE FROM {lake.LAKE}.{SLICES}.{FORGET} WHERE partition = ? AND requested_at = ?",
                            [partition, at])

        _committed(con, delete)


def _committed(con: duckdb.DuckDBPyConnection, work: object) -> None:
    """Run `work` (a callable) in one lake transaction, again if it collided with another
    member's commit (DuckLake's optimistic concurrency), up to CONFLICT_RETRIES times."""
    for attempt in range(CONFLICT_RETRIES):
        con.execute("BEGIN")
        try:
            work()  # type: ignore[operator]
            con.execute("COMMIT")
            return
        except duckdb.TransactionException as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            if "conflict" not in str(exc).lower() or attempt == CONFLICT_RETRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
