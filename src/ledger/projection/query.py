"""Analysts' side: read-only connections to the published copy, queries, as-of queries."""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from ledger.errors import LedgerError, NotPublishedError, QueryRefusedError, ReadModelError
from ledger.projection import lake
from ledger.projection.answers import Answer, Take, keep_rows
from ledger.projection.lake import Lake
from ledger.projection.publish import scratch_folder
from ledger.projection.timetravel import nothing_after, rebuild, refresh_copy
from ledger.settings import Settings

SANDBOX = {
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,  # no Python object read as a table by its name
    "temp_directory": "",  # a query too big for memory fails; it never spills into the data directory
}
"""How analysts' connections are opened: whatever the SQL, it reads the one file it was given,
and writes nothing anywhere. External access (files, ATTACH, COPY, HTTP) is switched off right
after opening: DuckDB refuses a temp_directory given together with it."""

READ_PRAGMAS = frozenset(
    {"table_info", "show_tables", "show_tables_expanded", "show", "database_size", "database_list",
     "version", "platform", "storage_info", "functions", "collations", "metadata_info"}
)
DEFAULT_TIMEOUT_S = 300.0
STOP_GRACE_S = 2.0
"""How long a query interrupted (timeout, Ctrl-C) may take to notice: DuckDB checks between
chunks of work, and one long function call (sorting a list of a hundred million) checks
never. Past this, the query is left to die with the process instead of being waited for."""


def published(settings: Settings) -> Path | Lake:
    """Where readers find the read models: the published copy, or the lake (`projection.store`)."""
    return Lake(settings) if settings.projection.store == "ducklake" else settings.published_path


def open_for_reading(path: Path | Lake) -> duckdb.DuckDBPyConnection:
    """A read-only, sandboxed connection to a published read-model file (or the lake).

    Read only, no external access, no extensions, times in UTC whatever the machine's TZ, and
    the configuration locked so that no statement can loosen any of it.
    """
    if isinstance(path, Lake):
        return lake.open_for_reading(path.settings, SANDBOX)
    if not path.exists():
        raise NotPublishedError(f"no read models at {path} yet: run `ledger project` or `ledger demo` first")
    try:
        con = duckdb.connect(str(path), read_only=True, config=dict(SANDBOX))
        con.execute("SET enable_external_access = false")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as exc:
        raise ReadModelError(f"cannot open {path}: {exc}") from exc
    return con


def read_statement(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The one read statement in `sql`, or a QueryRefusedError saying what is refused.

    Parsed by DuckDB itself, so what is checked is what would run; an EXPLAIN is checked for
    what it explains (EXPLAIN ANALYZE runs it).
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefusedError(f"query failed: {exc}") from exc
    if not statements:
        raise QueryRefusedError("no statement given: write one read statement (SELECT, WITH, DESCRIBE, ...)")
    if len(statements) > 1:
        raise QueryRefusedError(
            f"only one read statement per query (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN): "
            f"got {len(statements)} statements"
        )
    (statement,) = statements
    _check_read(con, statement)
    return statement.query


def _without_leading_comments(text: str) -> str:
    """`text` from its first word on: blanks, ``-- line`` and ``/* block */`` comments before
    it skipped, block comments nested as DuckDB nests them (``/* /* */ still a comment */``)."""
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end + 1
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < len(text) and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        else:
            break
    return text[i:]


_EXPLAIN = re.compile(r"EXPLAIN\s+(?:ANALY[SZ]E\b\s*)?(?:\((?:[^()'\"]|'[^']*')*\)\s*)?", re.IGNORECASE)


def _check_read(con: duckdb.DuckDBPyConnection, statement: Any) -> None:
    kind = statement.type
    text = _without_leading_comments(statement.query)
    if kind == duckdb.StatementType.EXPLAIN:
        prefix = _EXPLAIN.match(text)
        try:
            explained = con.extract_statements(text[prefix.end():]) if prefix else []
        except duckdb.Error:
            explained = []
        if len(explained) != 1:
            raise QueryRefusedError("EXPLAIN is allowed only of one read statement")
        _check_read(con, explained[0])
    elif kind == duckdb.StatementType.PRAGMA:
        words = text.split(None, 1)
        name = words[1].split("(", 1)[0].split("=", 1)[0].strip().lower() if len(words) == 2 else ""
        if name not in READ_PRAGMAS:
            raise QueryRefusedError(
                f"PRAGMA {name or '?'} is not a read; allowed: {', '.join(sorted(READ_PRAGMAS))}"
            )
    elif kind != duckdb.StatementType.SELECT:
        raise QueryRefusedError(
            f"only read statements run here, one per query (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, "
            f"SUMMARIZE, EXPLAIN, PRAGMA table_info...): got {kind.name}; analysts read, never write, and "
            f"exports are commands of their own"
        )
    elif con.execute("SELECT current_database()").fetchall()[0][0] == lake.LAKE:
        reason = lake.refused(con, text)
        if reason:
            raise QueryRefusedError(f"not on the lake: {reason}")


def query(
    path: Path | Lake, sql: str, *, as_of: datetime | None = None, settings: Settings | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run read-only SQL against the published read models; return column names and rows
    (`answer` with every row kept)."""
    result = answer(path, sql, keep_rows(None), as_of=as_of, settings=settings, timeout_s=timeout_s)
    return result.columns, result.rows


def answer(
    path: Path | Lake, sql: str, take: Take, *, as_of: datetime | None = None, settings: Settings | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S, known_at: datetime | None = None,
) -> Answer:
    """Run read-only SQL against the published read models and hand its result to `take`
    (answers.py: keep the rows, or write them as CSV, JSON, Parquet...).

    With `as_of` (event time) or `known_at` (recorded time) the query runs on a temporary
    copy with every model as of then (`snapshot`, with `settings`); the published file is
    never changed.

    The SQL runs on a sandboxed read-only connection (`open_for_reading`): one read statement,
    stopped after `timeout_s` seconds or by Ctrl-C, writing included.
    """
    with snapshot(path, as_of, settings, known_at) as readable:
        return _answer(readable, sql, take, timeout_s)


@contextlib.contextmanager
def snapshot(
    path: Path | Lake, as_of: datetime | None, settings: Settings | None, known_at: datetime | None = None
) -> Iterator[Path | Lake]:
    """The read models to read: the published file, or a temporary copy with every model as
    of the event time `as_of` and/or as known at the recorded time `known_at` (timetravel.py),
    removed afterwards. When nothing happened after `as_of` and `known_at` is not given, the
    copy only has its as-of models refreshed, which is the same and much quicker."""
    if as_of is None and known_at is None:
        yield path
        return
    if isinstance(path, Lake):
        with scratch_folder(path.settings.data_dir) as scratch, contextlib.closing(open_for_reading(path)) as source:
            rebuild(path, source, scratch / "as-of.duckdb", as_of=as_of, known_at=known_at, settings=settings)
            yield scratch / "as-of.duckdb"
        return
    open_for_reading(path).close()  # raises the "no read models yet" error
    with scratch_folder(path.parent) as scratch:
        # One copy of the published file is read throughout: a publish that replaces it in
        # between cannot mix two copies (a check on one, the events of the next).
        copy, built = scratch / path.name, scratch / f"built-{path.name}"
        shutil.copyfile(path, copy)
        source = open_for_reading(copy)
        try:
            if known_at is None and as_of is not None and nothing_after(source, as_of):
                source.close()
                refresh_copy(copy, as_of, settings)
                built = copy
            else:
                rebuild(path, source, built, as_of=as_of, known_at=known_at, settings=settings)
        except RuntimeError as exc:  # DuckDB's answer to Ctrl-C while it refreshes
            if "interrupted" in str(exc).lower():
                raise KeyboardInterrupt from exc
            raise
        finally:
            with contextlib.suppress(duckdb.Error):
                source.close()
        yield built


def _answer(path: Path | Lake, sql: str, take: Take, timeout_s: float) -> Answer:
    con = open_for_reading(path)
    try:
        statement = read_statement(con, sql)
        return _run(con, statement, take, timeout_s)
    finally:
        with contextlib.suppress(duckdb.Error):  # busy: a query abandoned, which ends with the process
            con.close()


def _run(con: duckdb.DuckDBPyConnection, sql: str, take: Take, timeout_s: float) -> Answer:
    """Run `sql` and `take` its result in a worker thread, so that the timeout and Ctrl-C
    (KeyboardInterrupt in the main thread, which DuckDB itself would not see for minutes) can
    interrupt it."""
    outcome: dict[str, Any] = {}
    finished = threading.Event()  # not Thread.join: a join cut short by Ctrl-C can lie about it

    def work() -> None:
        try:
            outcome["value"] = take(con, sql)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc
        finally:
            finished.set()

    deadline = time.monotonic() + timeout_s
    timed_out = False
    try:
        threading.Thread(target=work, name="query", daemon=True).start()
        while not finished.wait(min(max(deadline - time.monotonic(), 0), 0.1)):
            if time.monotonic() >= deadline:
                timed_out = True
                _stop(con, finished)
                break
    except KeyboardInterrupt:
        _stop(con, finished)
        raise
    error = outcome.get("error")
    if timed_out and (error is not None or "value" not in outcome):
        raise ReadModelError(f"query took longer than {timeout_s:g} s and was stopped (--timeout)")
    if isinstance(error, duckdb.Error):
        raise ReadModelError(f"query failed: {error}") from error
    if isinstance(error, LedgerError | OSError):
        raise error
    if isinstance(error, Exception):  # a value Python cannot hold (an interval of 2^31 months)
        raise ReadModelError(f"query failed: a value in the result cannot be shown ({error})") from error
    if error is not None:
        raise error
    return outcome["value"]


def _stop(con: duckdb.DuckDBPyConnection, finished: threading.Event) -> None:
    """Interrupt until the statement has ended (an interrupt sent before it began is lost), or
    until `STOP_GRACE_S` has passed: then it is abandoned, to end with the process."""
    given_up = time.monotonic() + STOP_GRACE_S
    while not finished.is_set() and time.monotonic() < given_up:
        con.interrupt()
        finished.wait(0.05)


def state(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM projector_state").fetchall())
