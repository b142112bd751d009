"""Parked events: what a projector could not apply, set aside so that the rest flows on.

An event is parked for its content only: a payload that does not decode, or one that makes a
model's SQL fail with a data error (a value that cannot be converted, is out of range, breaks
a constraint, or is refused by the SQL itself). Anything else (the disk, the file, the SQL of
a model being wrong for every event) still stops the projector: parking every event of a
broken deployment would hide it.

Parked events live in the read models (``parked_events``), written in the transaction that
applies the rest of their batch and stores the positions past it, so the read models are
always a prefix of the log minus its parked events. `ledger replay` tries every event again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

CONTENT_ERRORS = (
    duckdb.ConversionException,
    duckdb.OutOfRangeException,
    duckdb.ConstraintException,
    duckdb.InvalidInputException,
)
"""The DuckDB errors that an event's values cause; every other error is the system's."""

PARKED_COLUMNS = pa.schema(
    [
        ("source", pa.string()),
        ("position_key", pa.string()),
        ("position", pa.int64()),
        ("stage", pa.string()),
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("customer_id", pa.string()),
        ("reason", pa.string()),
        ("payload", pa.binary()),
    ]
)


@dataclass(frozen=True)
class ParkedEvent:
    payload: bytes
    reason: str
    stage: str
    """``decode`` (the payload cannot become a row) or ``apply`` (a model's SQL fails on it)."""
    position_key: str | None = None
    position: int | None = None
    """Where the source has it (``log`` and the notification id, a partition and the offset);
    None when the source does not say."""
    event_id: str | None = None
    event_type: str | None = None
    customer_id: str | None = None


def is_content_error(exc: BaseException) -> bool:
    """Whether `exc` (or the DuckDB error it wraps) comes from the values of the events."""
    return isinstance(exc, CONTENT_ERRORS) or isinstance(exc.__cause__, CONTENT_ERRORS)


Attempt = Callable[[pa.Table], BaseException | None]
"""Tries a table of events on the read models and undoes it: None if it applies, else the
content error."""


def split_unappliable(
    table: pa.Table, attempt: Attempt, failed: BaseException
) -> tuple[list[int], list[tuple[int, str]]]:
    """The rows of `table` that apply together (in order), and each row that does not with
    the reason, given that the whole table failed with `failed`.

    Rows are settled in order, each group tried together with every row accepted before it,
    halving a group that fails until one row is left: that row is the culprit. So a row is
    set aside exactly when it cannot be applied after the rows before it, whatever else is in
    the batch, and k bad rows among n cost about 2k·log2(n) attempts.
    """
    good: list[int] = []
    bad: list[tuple[int, str]] = []

    def settle(rows: list[int], error: BaseException | None) -> None:
        if error is None:
            error = attempt(rows_of(table, good + rows))
            if error is None:
                good.extend(rows)
                return
        if len(rows) == 1:
            bad.append((rows[0], str(error)))
            return
        left, right = rows[: len(rows) // 2], rows[len(rows) // 2 :]
        before = len(good)
        settle(left, None)
        # With all of `left` accepted, trying `right` would repeat the attempt that failed.
        settle(right, error if len(good) - before == len(left) else None)

    settle(list(range(table.num_rows)), failed)
    return good, bad


def rows_of(table: pa.Table, rows: list[int]) -> pa.Table:
    """The `rows` of `table`, in that order (an empty list gives an empty table)."""
    return table.take(pa.array(rows, type=pa.int64()))


def parked_table(source: str, parked: list[ParkedEvent]) -> pa.Table:
    """`parked` as rows of ``parked_events`` (without ``parked_at``), each event once."""
    seen: set[bytes | str] = set()
    rows = []
    for p in parked:
        if p.payload in seen or (p.event_id is not None and p.event_id in seen):
            continue
        seen.add(p.payload)
        if p.event_id is not None:
            seen.add(p.event_id)
        rows.append(
            {
                "source": source, "position_key": p.position_key, "position": p.position,
                "stage": p.stage, "event_id": p.event_id, "event_type": p.event_type,
                "customer_id": p.customer_id, "reason": p.reason, "payload": p.payload,
            }
        )
    return pa.Table.from_pylist(rows, schema=PARKED_COLUMNS)


def has_parked_table(con: duckdb.DuckDBPyConnection) -> bool:
    """A file published before events could be parked has no such table: nothing is parked."""
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_name = 'parked_events' AND table_schema = 'main'"
        ).fetchall()[0][0]
    )


def _where(source: str, key: str | None, position: int | None) -> str:
    if key is None:
        return source
    return f"{source} {key}:{position}" if position is not None else f"{source} {key}"


def parked_summary(con: duckdb.DuckDBPyConnection, newest: int = 3) -> dict[str, Any]:
    """For `ledger status`: how many events are parked and, for the newest few, where they
    are and why (read-only)."""
    if not has_parked_table(con):
        return {"parked_events": 0}
    count = con.execute("SELECT count(*) FROM parked_events").fetchall()[0][0]
    summary: dict[str, Any] = {"parked_events": count}
    if count:
        rows = con.execute(
            "SELECT source, position_key, position, reason FROM parked_events "
            "ORDER BY parked_at DESC, source, position_key, position DESC NULLS LAST LIMIT ?",
            [newest],
        ).fetchall()
        summary["newest_parked"] = [f"{_where(s, k, p)}: {reason}" for s, k, p, reason in rows]
    return summary


LISTED = ["source", "position_key", "position", "stage", "event_id", "event_type",
          "customer_id", "reason", "parked_at", "payload"]


def parked_rows(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> tuple[int, list[dict[str, Any]]]:
    """How many events are parked, and the `limit` most recent (all by default), oldest
    first, every column."""
    if not has_parked_table(con):
        return 0, []
    total = con.execute("SELECT count(*) FROM parked_events").fetchall()[0][0]
    rows = con.execute(
        f"SELECT {', '.join(LISTED)} FROM parked_events "
        "ORDER BY parked_at DESC, source, position_key, position DESC NULLS LAST LIMIT ?",
        [total if limit is None else limit],
    ).fetchall()
    return total, [dict(zip(LISTED, row, strict=True)) for row in reversed(rows)]
