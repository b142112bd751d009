"""The store's table of waiting facts: refunds whose order the ledger does not know yet.

A row is written in the transaction of the batch that parked the fact (the recorders'
``waiting=`` argument), deleted in the one that records it once its order arrives
(``waiting_done=``), or marked rejected there with the reason (``waiting_rejected=``), so a
refund is never both waiting and recorded. The transaction of a customer's CustomerErased
deletes their rows (``erased=``): a waiting refund's reason is personal data, sealed under
the customer's key, and its row must not outlive the erasure either.

``data`` is the fact's Avro encoding as it would be stored (personal fields sealed);
``since`` when it started waiting, which is also the order waiting facts are decided in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

WAITING = "waiting"
REJECTED = "rejected"
_COLUMNS = "event_id, customer_id, order_id, source, source_event_id, since, data, status, reason"


class WaitingRow(NamedTuple):
    event_id: str
    customer_id: str
    order_id: str
    source: str
    source_event_id: str | None
    since: datetime
    data: bytes
    status: str = WAITING
    reason: str | None = None


def _iso(moment: datetime) -> str:
    """SQLite keeps `since` as text in one fixed format, so text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class SQLiteWaitingTable:
    """Waiting-table statements for the SQLite recorder (mixed into it)."""

    datastore: Any
    waiting_table: str

    def create_waiting_table(self, c: Any) -> None:
        c.execute(f"CREATE TABLE IF NOT EXISTS {self.waiting_table} (event_id TEXT PRIMARY KEY, "
                  "customer_id TEXT NOT NULL, order_id TEXT NOT NULL, source TEXT NOT NULL, source_event_id TEXT, "
                  "since TEXT NOT NULL, data BLOB NOT NULL, status TEXT NOT NULL, reason TEXT) WITHOUT ROWID")
        c.execute(f"CREATE INDEX IF NOT EXISTS {self.waiting_table}_order ON {self.waiting_table} "
                  "(customer_id, order_id)")

    def write_waiting(self, c: Any, kwargs: dict[str, Any]) -> None:
        added = kwargs.get("waiting") or ()
        if added:
            c.executemany(f"INSERT OR IGNORE INTO {self.waiting_table} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [(*r[:5], _iso(r.since), r.data, r.status, r.reason) for r in added])
        done = kwargs.get("waiting_done") or ()
        if done:
            c.executemany(f"DELETE FROM {self.waiting_table} WHERE event_id = ?", [[e] for e in done])
        rejected = kwargs.get("waiting_rejected") or ()
        if rejected:
            c.executemany(f"UPDATE {self.waiting_table} SET status = '{REJECTED}', reason = ? WHERE event_id = ?",
                          list(rejected))
        erased = kwargs.get("erased") or ()
        if erased:
            c.executemany(f"DELETE FROM {self.waiting_table} WHERE customer_id = ?", [[e] for e in erased])

    def select_waiting(self, event_ids: Sequence[str], orders: Sequence[tuple[str, str]]) -> list[WaitingRow]:
        """The facts still waiting with one of `event_ids`, or for one of the ``(customer_id,
        order_id)`` `orders`."""
        found: dict[str, WaitingRow] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(event_ids), 8000):
                chunk = list(event_ids[start : start + 8000])
                c.execute(f"SELECT {_COLUMNS} FROM {self.waiting_table} WHERE status = '{WAITING}' "
                          f"AND event_id IN ({', '.join('?' * len(chunk))})", chunk)
                found.update((r[0], self._row(r)) for r in c.fetchall())
            for start in range(0, len(orders), 4000):
                chunk = list(orders[start : start + 4000])
                c.execute(f"SELECT {_COLUMNS} FROM {self.waiting_table} WHERE status = '{WAITING}' AND "
                          f"(customer_id, order_id) IN (VALUES {', '.join(['(?, ?)'] * len(chunk))})",
                          [value for pair in chunk for value in pair])
                found.update((r[0], self._row(r)) for r in c.fetchall())
        return sorted(found.values(), key=lambda r: (r.since, r.event_id))

    def list_waiting(self, limit: int) -> list[WaitingRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT {_COLUMNS} FROM {self.waiting_table} ORDER BY since, event_id LIMIT ?", [limit])
            return [self._row(r) for r in c.fetchall()]

    def waiting_summary(self) -> dict[str, Any]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT status, count(*), min(since) FROM {self.waiting_table} GROUP BY status")
            by_status = {r[0]: (r[1], r[2]) for r in c.fetchall()}
        waiting, oldest = by_status.get(WAITING, (0, None))
        return {"waiting": waiting, "oldest": datetime.fromisoformat(oldest) if oldest else None,
                "rejected": by_status.get(REJECTED, (0, None))[0]}

    @staticmethod
    def _row(r: Any) -> WaitingRow:
        return WaitingRow(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5]), bytes(r[6]), r[7], r[8])


class PostgresWaitingTable:
    """Waiting-table statements for the PostgreSQL recorder (mixed into it)."""

    datastore: Any
    waiting_table: str
    waiting_name: str

    def create_waiting_table(self, curs: Any) -> None:
        curs.execute(f"CREATE TABLE IF NOT EXISTS {self.waiting_table} (event_id TEXT PRIMARY KEY, "
                     "customer_id TEXT NOT NULL, order_id TEXT NOT NULL, source TEXT NOT NULL, source_event_id TEXT, "
                     "since TIMESTAMPTZ NOT NULL, data BYTEA NOT NULL, status TEXT NOT NULL, reason TEXT)")
        curs.execute(f'CREATE INDEX IF NOT EXISTS "{self.waiting_name}_order" ON {self.waiting_table} '
                     "(customer_id, order_id)")

    def write_waiting(self, curs: Any, kwargs: dict[str, Any]) -> None:
        added = kwargs.get("waiting") or ()
        done = kwargs.get("waiting_done") or ()
        rejected = kwargs.get("waiting_rejected") or ()
        erased = kwargs.get("erased") or ()
        if not (added or done or rejected or erased):
            return
        with curs.connection.cursor() as own:  # `curs` may hold the new notification ids, read later
            if added:
                own.execute(
                    f"INSERT INTO {self.waiting_table} SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], "
                    "%s::text[], %s::text[], %s::timestamptz[], %s::bytea[], %s::text[], %s::text[]) "
                    "ON CONFLICT DO NOTHING", [list(column) for column in zip(*added, strict=True)])
            if done:
                own.execute(f"DELETE FROM {self.waiting_table} WHERE event_id = ANY(%s)", [list(done)])
            for reason, event_id in rejected:
                own.execute(f"UPDATE {self.waiting_table} SET status = '{REJECTED}', reason = %s WHERE event_id = %s",
                            [reason, event_id])
            if erased:
                own.execute(f"DELETE FROM {self.waiting_table} WHERE customer_id = ANY(%s)", [list(erased)])

    def select_waiting(self, event_ids: Sequence[str], orders: Sequence[tuple[str, str]]) -> list[WaitingRow]:
        if not event_ids and not orders:
            return []
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT {_COLUMNS} FROM {self.waiting_table} WHERE status = '{WAITING}' AND (event_id = ANY(%s) "
                "OR (customer_id, order_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))) "
                "ORDER BY since, event_id",
                [list(event_ids), [o[0] for o in orders], [o[1] for o in orders]],
            )
            return [self._row(r) for r in curs.fetchall()]

    def list_waiting(self, limit: int) -> list[WaitingRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT {_COLUMNS} FROM {self.waiting_table} ORDER BY since, event_id LIMIT %s", [limit])
            return [self._row(r) for r in curs.fetchall()]

    def waiting_summary(self) -> dict[str, Any]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT status, count(*) AS n, min(since) AS oldest FROM {self.waiting_table} "
                         "GROUP BY status")
            by_status = {r["status"]: (r["n"], r["oldest"]) for r in curs.fetchall()}
        waiting, oldest = by_status.get(WAITING, (0, None))
        return {"waiting": waiting, "oldest": oldest, "rejected": by_status.get(REJECTED, (0, None))[0]}

    @staticmethod
    def _row(r: Any) -> WaitingRow:
        return WaitingRow(r["event_id"], r["customer_id"], r["order_id"], r["source"], r["source_event_id"],
                          r["since"], bytes(r["data"]), r["status"], r["reason"])
