"""A query's answer written out: rows for a table on screen, CSV, JSON, JSON Lines or Parquet.

Each writer is a `Take`: it reads a DuckDB result inside the query's worker thread, so the
query's timeout and Ctrl-C cover the writing too, and it reads in chunks, so an answer of
millions of rows is written without holding them all (the table, the one format for people,
holds only what it shows and counts the rest).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import duckdb

from ledger.errors import SettingsError

FORMATS = ("table", "csv", "json", "jsonl", "parquet")
TABLE_ROWS = 100
"""Rows a table shows unless --limit says otherwise: drawing 27,000 rows took 11 s and no
one reads them; the rest are counted and said."""
CHUNK = 10_000


@dataclass
class Answer:
    columns: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    """The rows kept (a table's); empty when they were written out."""
    written: int = 0
    more: int = 0
    """Rows of the answer beyond `rows` (or beyond --limit), counted but not kept."""


Take = Callable[[duckdb.DuckDBPyConnection, str], Answer]
"""Runs a checked statement on a connection and writes or keeps what it gives."""


def _columns(result: duckdb.DuckDBPyConnection) -> list[str]:
    return [d[0] for d in result.description] if result.description else []


def _chunks(result: duckdb.DuckDBPyConnection, limit: int | None) -> Iterator[list[tuple[Any, ...]]]:
    left = math.inf if limit is None else limit
    while left > 0:
        rows = result.fetchmany(int(min(CHUNK, left)))
        if not rows:
            return
        left -= len(rows)
        yield rows


def _count_rest(result: duckdb.DuckDBPyConnection) -> int:
    more = 0
    while rows := result.fetchmany(CHUNK):
        more += len(rows)
    return more


def keep_rows(limit: int | None) -> Take:
    """Keep at most `limit` rows (all if None) and count the rest."""

    def take(con: duckdb.DuckDBPyConnection, sql: str) -> Answer:
        result = con.execute(sql)
        answer = Answer(_columns(result))
        if not answer.columns:
            return answer
        for rows in _chunks(result, limit):
            answer.rows.extend(rows)
        answer.more = _count_rest(result) if limit is not None else 0
        return answer

    return take


def write_text(kind: str, stream: IO[str], limit: int | None) -> Take:
    """Write csv, json (one array of objects, the shape of --json) or jsonl to `stream`."""

    def take(con: duckdb.DuckDBPyConnection, sql: str) -> Answer:
        result = con.execute(sql)
        answer = Answer(_columns(result))
        names = distinct(answer.columns)
        writer = csv.writer(stream, lineterminator="\n") if kind == "csv" else None
        if writer is not None and answer.columns:
            writer.writerow(answer.columns)
        elif kind == "json":
            stream.write("[")
        for rows in _chunks(result, limit) if answer.columns else ():
            for row in rows:
                if writer is not None:
                    writer.writerow([_csv_value(v) for v in row])
                else:
                    line = json.dumps(dict(zip(names, (plain(v) for v in row), strict=True)), ensure_ascii=False)
                    stream.write(line + "\n" if kind == "jsonl" else (", " if answer.written else "") + line)
                answer.written += 1
        if kind == "json":
            stream.write("]\n")
        answer.more = _count_rest(result) if limit is not None and answer.columns else 0
        return answer

    return take


def write_parquet(path: Path, limit: int | None) -> Take:
    """Write the answer to `path` as Parquet, record batch by record batch, with DuckDB's own
    Arrow types (a HUGEINT is a decimal(38,0), an interval a month-day-nano interval)."""

    def take(con: duckdb.DuckDBPyConnection, sql: str) -> Answer:
        import pyarrow as pa
        import pyarrow.parquet as pq

        relation = con.sql(sql)  # a relation streams Arrow batches without a copy of the rows
        if relation is None:
            raise SettingsError("that statement gives no rows to write as Parquet")
        answer = Answer(list(relation.columns))
        reader = relation.to_arrow_reader(CHUNK)
        schema = pa.schema([_without_intervals(f) for f in reader.schema])
        left = math.inf if limit is None else limit
        with pq.ParquetWriter(str(path), schema) as writer:
            writer.write_table(pa.Table.from_batches([], schema=schema))
            for read in reader:
                batch = _intervals_as_text(read, schema)
                if left <= 0:
                    answer.more += batch.num_rows
                    continue
                kept = batch.slice(0, int(min(left, batch.num_rows)))
                writer.write_batch(kept)
                answer.written += kept.num_rows
                answer.more += batch.num_rows - kept.num_rows
                left -= kept.num_rows
        return answer

    return take


def refuse_inside(path: Path, data_dir: Path, flag: str) -> None:
    """Refuse a `path` given with `flag` that is, or is inside, the data directory: a file
    written there could replace the event store or the read models themselves."""
    where, home = path.expanduser().resolve(), data_dir.expanduser().resolve()
    if where == home or home in where.parents:
        raise SettingsError(f"{flag} {path}: not inside the data directory {data_dir}, which holds the ledger itself")


@contextlib.contextmanager
def output_file(path: Path, data_dir: Path, flag: str = "--output") -> Iterator[Path]:
    """A scratch file beside `path`, renamed to it once the answer is whole: a failed or
    stopped query leaves no half-written file, and an earlier one stays as it was.

    Nothing is written into the data directory (`refuse_inside`)."""
    target = path.expanduser().absolute()
    refuse_inside(path, data_dir, flag)
    if target.is_dir():
        raise SettingsError(f"{flag} {path} is a directory: give a file name")
    if not target.parent.is_dir():
        raise SettingsError(f"{flag} {path}: there is no directory {target.parent}")
    try:  # a name no one can plant a symlink at beforehand, created by us alone
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise SettingsError(f"cannot write {flag} {path}: {exc.strerror or exc}") from exc
    os.close(handle)
    scratch = Path(name)
    try:
        yield scratch
        os.replace(scratch, target)
    except OSError as exc:
        raise SettingsError(f"cannot write {flag} {path}: {exc.strerror or exc}") from exc
    finally:
        scratch.unlink(missing_ok=True)


def _without_intervals(field: Any) -> Any:
    """Parquet has no type for an Arrow month-day-nano interval: such a column is written as
    ISO-8601 duration text (P1M2DT3S), months kept."""
    import pyarrow as pa

    return field.with_type(pa.string()) if pa.types.is_interval(field.type) else field


def _intervals_as_text(batch: Any, schema: Any) -> Any:
    import pyarrow as pa

    if batch.schema.equals(schema):
        return batch
    columns = [
        pa.array([None if v is None else _iso_interval(v.months, v.days, v.nanoseconds) for v in column.to_pylist()],
                 pa.string()) if pa.types.is_interval(column.type) else column
        for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _iso_interval(months: int, days: int, nanoseconds: int) -> str:
    years, months = divmod(months, 12) if months >= 0 else (0, months)
    seconds = duration(timedelta(microseconds=nanoseconds // 1000))  # PT..S of the time part
    date = (f"{years}Y" if years else "") + (f"{months}M" if months else "") + (f"{days}D" if days else "")
    time_part = seconds[seconds.index("T"):] if nanoseconds else ""
    if time_part and seconds.startswith("-"):
        time_part = "T-" + time_part[1:]
    return "P" + (date + time_part or "T0S")


def _csv_value(value: Any) -> Any:
    """A value as a CSV cell: NULL empty, nested values as JSON, times ISO-8601; text exactly
    as stored (a cell that begins with ``=`` is data here, not a spreadsheet formula)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # nan and inf as they are
    if isinstance(value, dict | list | tuple):
        return json.dumps(plain(value), ensure_ascii=False)
    return plain(value)


def distinct(columns: list[str]) -> list[str]:
    """Column names as JSON keys: a name that comes again (``SELECT 1 AS a, 2 AS a``, a join's
    two ``customer_id``) gets ``_2``, ``_3``... instead of overwriting the first's values."""
    seen: set[str] = set()
    names = []
    for column in columns:
        name, n = column, 1
        while name in seen:
            n += 1
            name = f"{column}_{n}"
        seen.add(name)
        names.append(name)
    return names


def plain(value: Any) -> Any:
    """A value as JSON can carry it: times ISO-8601 (aware ones with their UTC offset),
    intervals ISO-8601 durations, decimals and UUIDs as text, bytes as hex, NaN as null."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def duration(value: timedelta) -> str:
    """ISO-8601: P3DT4H5M6.5S, PT0S, a negative one -P... (to the microsecond, as DuckDB keeps it)."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second = f"{seconds}.{value.microseconds:06d}".rstrip("0").rstrip(".") if value.microseconds else str(seconds)
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    clock += f"{second}S" if seconds or value.microseconds else ""
    days = f"{value.days}D" if value.days else ""
    if not days and not clock:
        return "PT0S"
    return f"{sign}P{days}" + (f"T{clock}" if clock else "")
