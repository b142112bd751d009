"""eventsourcing's recorders, plus the ledger's index of event ids, in the same transactions.

Every fact's `event_id` must mean one event, across all customers, forever: the projector
drops repeats by event_id, so a second event under a used id would be stored but never
projected. And idempotency must not forget: the same ``(source, source_event_id)`` gives one
event however many the customer has. Both rest on one table, ``<app>_event_ids``, written in
the transaction that inserts the events (rows passed as ``event_ids=`` through
``Application.save``), with the event id as its primary key: a writer racing another for the
same id fails that transaction with an IntegrityError, decides again and finds the winner's.

A store made before this table existed gets it filled from its events when it is created.
The table of waiting facts (write/waiting_table.py) is written in the same transactions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteProcessRecorder
from eventsourcing.utils import retry

from ledger.contract.codec import Codec, default_codec
from ledger.contract.sealing import SEALED
from ledger.write.domain import STATE_EVENTS
from ledger.write.key_table import PostgresKeyTable, SQLiteKeyTable, insert_as_arrays
from ledger.write.store import TOPIC_PREFIX, fact_topic
from ledger.write.waiting_table import PostgresWaitingTable, SQLiteWaitingTable

EventIdRow = tuple[str, str, str, str | None, str]
"""``(event_id, customer_id, source, source_event_id, fingerprint)``: the fingerprint tells the
same fact sent again under its own event_id from another fact under a reused one."""


FINGERPRINT_FORMAT = "v3:"
"""The prefix of fingerprints made by `fingerprint`; rows of an older format are made again
from their events when the store is opened (`_legacy_fingerprints`)."""


@dataclass
class CustomerState:
    """What deciding about a customer needs, read for many customers in one query instead of
    replaying every one of their events: its version, and its events of the types that change
    its state (``(version, encoded)``, in order; `ledger.write.domain.STATE_EVENTS`)."""

    id: UUID
    version: int
    events: list[tuple[int, bytes]] = field(default_factory=list)


def fingerprint(data: bytes, codec: Codec) -> str:
    """A digest of what an encoded fact says, whoever sent it and however: its type and its
    record as the codec reads it back, without when the ledger recorded it, without fields
    that are empty or hold their schema's default, with the keys of every record and map in
    order. The same fact sent again with its fields in another order, a default spelt out, or
    after a schema version added a field with a default, has the same fingerprint; a fact of
    another type with the same fields has another.

    Personal fields are left out (and so is their sealed form, which differs at each sealing):
    a digest of them would outlive the customer's erasure, and let anyone with a guess of their
    name confirm it. A fact that differs from one recorded under its event id only in personal
    data is therefore taken as sent again."""
    event_type, record = codec.decode(data)
    newest = codec.newest(event_type)
    left_out = {"recorded_at", SEALED, *newest.personal}
    defaults = newest.defaults
    said = {k: v for k, v in record.items()
            if k not in left_out and v is not None and not (k in defaults and v == defaults[k])}
    text = repr((event_type, _canonical(said))).encode("utf-8", "surrogatepass")
    return FINGERPRINT_FORMAT + hashlib.blake2b(text, digest_size=16).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _canonical(v)) for k, v in value.items() if v is not None))
    if isinstance(value, list | tuple):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, UUID | datetime | date):
        return str(value)
    return value


def row_of(event_type: str, record: dict[str, Any], data: bytes, codec: Codec) -> EventIdRow:
    """The index row of a fact (`data` is its encoding). Only a fact without a
    source_event_id needs its fingerprint: with one, ``(source, source_event_id)`` alone says
    whether it was sent before."""
    source_event_id = record.get("source_event_id")
    return (str(record["event_id"]), record["customer_id"], record["source"], source_event_id,
            "" if source_event_id is not None else fingerprint(data, codec))


_STATE_TOPICS = [fact_topic(event_type) for event_type in STATE_EVENTS]
_LOOKUP_CHUNK = 8000
"""Ids per SQLite lookup: below its 32,766 bound variables, pairs counting two."""


def _legacy_fingerprints(stored: Iterable[StoredEvent], legacy: set[str]) -> list[tuple[str, str]]:
    """``(fingerprint, event_id)`` made again for the events whose index row has an older
    format (`legacy`: their event ids), so a resend of a fact recorded before still matches."""
    return [(row[4], row[0]) for row in _rows_from(stored) if row[0] in legacy]


_LEGACY_ROWS = ("SELECT event_id FROM {table} WHERE fingerprint <> '' "
                f"AND substr(fingerprint, 1, {len(FINGERPRINT_FORMAT)}) <> '{FINGERPRINT_FORMAT}'")


def _rows_from(stored: Iterable[StoredEvent]) -> list[EventIdRow]:
    codec = default_codec()
    rows: list[EventIdRow] = []
    for event in stored:
        if event.topic.startswith(TOPIC_PREFIX):
            event_type, record = codec.decode(event.state)
            rows.append(row_of(event_type, record, event.state, codec))
    return rows


class LogEntry(NamedTuple):
    """A fact of the notification log as the relay and the projectors read it."""

    id: int
    """Its notification id: its place in the log."""
    topic: str
    state: bytes
    """The encoded event."""


class Trackings:
    """Positions written together: the relay stores a batch's acknowledged partition ends and
    its position with one commit, not one commit (and one fsync) each."""

    datastore: Any

    def insert_trackings(self, trackings: Sequence[Tracking]) -> None:
        with self.datastore.transaction(commit=True) as c:
            for tracking in trackings:
                self._insert_tracking(c, tracking)  # type: ignore[attr-defined]


class SQLiteLedgerRecorder(Trackings, SQLiteKeyTable, SQLiteWaitingTable, SQLiteProcessRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.event_ids_table = events_table_name.removesuffix("_events") + "_event_ids"
        self.keys_table = events_table_name.removesuffix("_events") + "_keys"
        self.waiting_table = events_table_name.removesuffix("_events") + "_waiting"

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as c:
            self.create_key_table(c)
            self.create_waiting_table(c)
            c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [self.event_ids_table])
            if c.fetchone():
                c.execute(_LEGACY_ROWS.format(table=self.event_ids_table))
                legacy = {row[0] for row in c.fetchall()}
                if legacy:
                    again = _legacy_fingerprints(self._all_events(c), legacy)
                    c.executemany(f"UPDATE {self.event_ids_table} SET fingerprint = ? WHERE event_id = ?", again)
                return
            c.execute(
                f"CREATE TABLE {self.event_ids_table} (event_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, "
                "source TEXT NOT NULL, source_event_id TEXT, fingerprint TEXT NOT NULL, "
                "UNIQUE (source, source_event_id)) WITHOUT ROWID"
            )
            # A store from before the index may hold one id twice (the bug the index ends): the first stays.
            rows = _rows_from(self._all_events(c))
            if rows:
                c.executemany(f"INSERT OR IGNORE INTO {self.event_ids_table} VALUES (?, ?, ?, ?, ?)", rows)

    def _all_events(self, c: Any) -> list[StoredEvent]:
        c.execute(f"SELECT originator_id, originator_version, topic, state FROM {self.events_table_name}")
        return [StoredEvent(r[0], r[1], r[2], r[3]) for r in c.fetchall()]

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """All the events in one ``executemany`` (eventsourcing's own executes one per event
        to read back its rowid: 40 % of a batch's insert). Within one write transaction new
        rowids follow each other, so the last one gives them all."""
        c.executemany(self.insert_events_statement, [
            (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
             s.originator_version, s.topic, s.state) for s in stored_events
        ])
        returning: list[int] = []
        if stored_events:
            c.execute("SELECT last_insert_rowid()")
            last = c.fetchone()[0]
            returning = list(range(last - len(stored_events) + 1, last + 1))
        if kwargs.get("tracking") is not None:  # what SQLiteProcessRecorder's own would do next
            self._insert_tracking(c, kwargs["tracking"])
        self._insert_ids(c, kwargs.get("event_ids") or ())
        self.write_keys(c, kwargs.get("keys") or (), kwargs.get("erased") or ())
        self.write_waiting(c, kwargs)
        return returning

    def _insert_ids(self, c: Any, rows: Sequence[EventIdRow]) -> None:
        if rows:
            c.executemany(f"INSERT INTO {self.event_ids_table} VALUES (?, ?, ?, ?, ?)", list(rows))

    def log_entries(self, after: int, limit: int) -> list[LogEntry]:
        """The facts among the `limit` notifications after id `after`: eventsourcing's
        select_notifications without a Notification and a UUID made per row (6 µs an event, on
        the critical path of a replay and of the relay)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT rowid, topic, state FROM {self.events_table_name} WHERE rowid > ? "
                      "ORDER BY rowid LIMIT ?", [after, limit])
            return [LogEntry(*row) for row in c.fetchall() if row[1].startswith(TOPIC_PREFIX)]

    def events_of_types(self, event_types: Sequence[str]) -> list[bytes]:
        """Every stored fact of these types, in log order: a scan of the store, for what is
        rare and asked rarely (the merges, when a customer is erased)."""
        topics = [fact_topic(t) for t in event_types]
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT state FROM {self.events_table_name} WHERE topic IN ({', '.join('?' * len(topics))}) "
                      "ORDER BY rowid", topics)
            return [bytes(row[0]) for row in c.fetchall()]

    def customer_states(self, aggregate_ids: Sequence[UUID]) -> list[CustomerState]:
        """What the store holds of these customers (those it has events of): see CustomerState."""
        states: list[CustomerState] = []
        topics = ", ".join("?" * len(_STATE_TOPICS))
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(aggregate_ids), _LOOKUP_CHUNK):
                chunk = [i.hex for i in aggregate_ids[start : start + _LOOKUP_CHUNK]]
                marks = ", ".join("?" * len(chunk))
                c.execute(f"SELECT originator_id, max(originator_version) FROM {self.events_table_name} "
                          f"WHERE originator_id IN ({marks}) GROUP BY originator_id", chunk)
                found = {row[0]: CustomerState(UUID(row[0]), row[1]) for row in c.fetchall()}
                c.execute(f"SELECT originator_id, originator_version, state FROM {self.events_table_name} "
                          f"WHERE originator_id IN ({marks}) AND topic IN ({topics}) "
                          "ORDER BY originator_id, originator_version", [*chunk, *_STATE_TOPICS])
                for row in c.fetchall():
                    found[row[0]].events.append((row[1], bytes(row[2])))
                states.extend(found.values())
        return states

    def find(self, event_ids: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[EventIdRow]:
        """The recorded rows with one of `event_ids`, or one of the ``(source,
        source_event_id)`` `pairs`."""
        found: list[EventIdRow] = []
        columns = f"SELECT event_id, customer_id, source, source_event_id, fingerprint FROM {self.event_ids_table}"
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(event_ids), _LOOKUP_CHUNK):
                chunk = list(event_ids[start : start + _LOOKUP_CHUNK])
                c.execute(f"{columns} WHERE event_id IN ({', '.join('?' * len(chunk))})", chunk)
                found.extend(tuple(row) for row in c.fetchall())  # type: ignore[misc]
            for start in range(0, len(pairs), _LOOKUP_CHUNK // 2):
                chunk = list(pairs[start : start + _LOOKUP_CHUNK // 2])
                c.execute(
                    f"{columns} WHERE (source, source_event_id) IN (VALUES {', '.join(['(?, ?)'] * len(chunk))})",
                    [value for pair in chunk for value in pair],
                )
                found.extend(tuple(row) for row in c.fetchall())  # type: ignore[misc]
        return found


class PostgresLedgerRecorder(Trackings, PostgresKeyTable, PostgresWaitingTable, PostgresProcessRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events",
                 tracking_table_name: str = "notification_tracking"):
        super().__init__(datastore, events_table_name=events_table_name, tracking_table_name=tracking_table_name)
        name = events_table_name.removesuffix("_events") + "_event_ids"
        self.check_identifier_length(name)
        self.event_ids_table = f'"{datastore.schema}"."{name}"'
        self.event_ids_name = f"{datastore.schema}.{name}"
        keys = events_table_name.removesuffix("_events") + "_keys"
        self.check_identifier_length(keys)
        self.keys_table = f'"{datastore.schema}"."{keys}"'
        waiting = events_table_name.removesuffix("_events") + "_waiting"
        self.check_identifier_length(waiting + "_order")
        self.waiting_table = f'"{datastore.schema}"."{waiting}"'
        self.waiting_name = waiting

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [self.event_ids_name])
            self.create_key_table(curs)
            self.create_waiting_table(curs)
            curs.execute("SELECT to_regclass(%s) AS found", [self.event_ids_name])
            row = curs.fetchone()
            if row and row["found"]:
                curs.execute(_LEGACY_ROWS.format(table=self.event_ids_table))
                legacy = {r["event_id"] for r in curs.fetchall()}
                if legacy:
                    again = _legacy_fingerprints(self._all_events(curs), legacy)
                    curs.executemany(f"UPDATE {self.event_ids_table} SET fingerprint = %s WHERE event_id = %s", again)
                return
            curs.execute(
                f"CREATE TABLE {self.event_ids_table} (event_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, "
                "source TEXT NOT NULL, source_event_id TEXT, fingerprint TEXT NOT NULL, "
                "UNIQUE (source, source_event_id))"
            )
            rows = _rows_from(self._all_events(curs))
            if rows:
                curs.executemany(
                    f"INSERT INTO {self.event_ids_table} VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", rows
                )

    def _all_events(self, curs: Any) -> list[StoredEvent]:
        curs.execute(
            f'SELECT originator_id, originator_version, topic, state FROM "{self.datastore.schema}".'
            f'"{self.events_table_name}" WHERE topic LIKE %s', [TOPIC_PREFIX + "%"]
        )
        return [StoredEvent(r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]))
                for r in curs.fetchall()]

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        """Also for a batch without events (its facts all wait): the waiting rows, and the
        keys they are sealed under, which `_insert_stored_events` writes when there are events."""
        super()._insert_events(curs, stored_events, **kwargs)
        self.write_waiting(curs, kwargs)
        if not stored_events:
            self.write_keys(curs, kwargs.get("keys") or (), ())

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        """After the events, so after the events table's lock: writers take it in turn, and
        overlapping ids cannot deadlock."""
        super()._insert_stored_events(curs, stored_events, **kwargs)
        rows = kwargs.get("event_ids") or ()
        if rows:  # on a cursor of its own: `curs` holds the new notification ids, read next
            with curs.connection.cursor() as ids:
                try:
                    insert_as_arrays(ids, self.event_ids_table, rows, ("text",) * 5)
                except psycopg.errors.PipelineAborted:
                    # The events' insert failed before this one (a customer's version taken by
                    # another writer): the pipeline's sync, next, raises that IntegrityError.
                    return
        try:
            self.write_keys(curs, kwargs.get("keys") or (), kwargs.get("erased") or ())
        except psycopg.errors.PipelineAborted:
            return

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def log_entries(self, after: int, limit: int) -> list[LogEntry]:
        """Retried as eventsourcing's select_notifications is: a pooled connection that
        PostgreSQL dropped (a restart) gives way to a new one instead of stopping the relay."""
        table = f'"{self.datastore.schema}"."{self.events_table_name}"'
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT notification_id, topic, state FROM {table} WHERE notification_id > %s "
                         "ORDER BY notification_id LIMIT %s", [after, limit], prepare=True)
            return [LogEntry(r["notification_id"], r["topic"], bytes(r["state"])) for r in curs.fetchall()
                    if r["topic"].startswith(TOPIC_PREFIX)]

    def events_of_types(self, event_types: Sequence[str]) -> list[bytes]:
        table = f'"{self.datastore.schema}"."{self.events_table_name}"'
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT state FROM {table} WHERE topic = ANY(%s) ORDER BY notification_id",
                         [[fact_topic(t) for t in event_types]])
            return [bytes(r["state"]) for r in curs.fetchall()]

    def customer_states(self, aggregate_ids: Sequence[UUID]) -> list[CustomerState]:
        table = f'"{self.datastore.schema}"."{self.events_table_name}"'
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT originator_id, max(originator_version) AS version FROM {table} "
                         "WHERE originator_id = ANY(%s) GROUP BY originator_id", [list(aggregate_ids)])
            found = {r["originator_id"]: CustomerState(r["originator_id"], r["version"]) for r in curs.fetchall()}
            curs.execute(f"SELECT originator_id, originator_version, state FROM {table} "
                         "WHERE originator_id = ANY(%s) AND topic = ANY(%s) ORDER BY originator_id, originator_version",
                         [list(aggregate_ids), _STATE_TOPICS])
            for r in curs.fetchall():
                found[r["originator_id"]].events.append((r["originator_version"], bytes(r["state"])))
        return list(found.values())

    def find(self, event_ids: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[EventIdRow]:
        if not event_ids and not pairs:
            return []
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT event_id, customer_id, source, source_event_id, fingerprint FROM {self.event_ids_table} "
                "WHERE event_id = ANY(%s) OR (source, source_event_id) IN "
                "(SELECT * FROM unnest(%s::text[], %s::text[]))",
                [list(event_ids), [p[0] for p in pairs], [p[1] for p in pairs]],
            )
            return [(r["event_id"], r["customer_id"], r["source"], r["source_event_id"], r["fingerprint"])
                    for r in curs.fetchall()]
