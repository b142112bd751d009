"""Events the relay parked: recorded in the store, refused by Kafka for what they are.

Kafka refuses some records however often they are sent (larger than the producer's
``max_request_size`` or the topic's ``max.message.bytes``, invalid for the broker). The relay
does not retry those forever, which would stop every later event: it records each one here
and goes on. The record lives in the event store, next to the relay's position, in a table
of the relay's own (``ledger_relay_parked``: topic, notification id, envelope, size, reason,
when), so it survives restarts and a lost Kafka cluster, and `relay_parked` lists it for
``ledger status`` and ``ledger dlq relay-parked``.

The table is created by the first park, never by a reader: listing a store that has none
shows nothing and changes nothing. Parking the same event again (a republish) keeps the
first record; an event once parked that Kafka later accepts (the topic's limit raised, then
``ledger relay --from-start``) is taken off the list.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

from eventsourcing.persistence import PersistenceError

from ledger.contract.codec import default_codec
from ledger.errors import LedgerError, StoreError
from ledger.kafka.clients import customer_key
from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.recorders import LogEntry
from ledger.write.store import TOPIC_PREFIX, connect, persistence_env, prepared

TABLE = "ledger_relay_parked"
COLUMNS = ("topic", "notification_id", "event_id", "event_type", "customer_id", "size_bytes", "reason", "parked_at")


@dataclass(frozen=True)
class ParkedRelayEvent:
    """One event the relay could not publish; `reason` is what Kafka (or the relay) said."""

    topic: str
    notification_id: int
    event_id: str | None
    event_type: str | None
    customer_id: str | None
    size_bytes: int
    reason: str
    parked_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}


def describe(topic: str, notification: LogEntry, reason: str, now: datetime) -> ParkedRelayEvent:
    """What is worth showing of a parked event, read from its bytes as far as they go."""
    event_type = notification.topic[len(TOPIC_PREFIX):] if notification.topic.startswith(TOPIC_PREFIX) else None
    event_id = customer_id = None
    try:
        customer_id = customer_key(notification.state).decode("utf-8", "replace")
        event_id = str(default_codec().decode(notification.state)[1]["event_id"])
    except (LedgerError, ValueError, KeyError, IndexError, TypeError):
        pass  # unreadable bytes are a reason to park, not a reason to fail
    return ParkedRelayEvent(
        topic, notification.id, event_id, event_type, customer_id, len(notification.state), reason, now
    )


class Parking:
    """The relay's side: park events and take them off the list, on the relay's store."""

    def __init__(self, ledger: Ledger, topic: str):
        self.ledger = ledger
        self.topic = topic
        self._created = False
        self.ids: set[int] = {p.notification_id for p in relay_parked(ledger.settings, topic=topic, ledger=ledger)}

    def park(self, events: list[ParkedRelayEvent]) -> None:
        if not events:
            return
        self._create()
        rows = [tuple(_stored(e.as_dict()[c]) for c in COLUMNS) for e in events]
        with _writing(self.ledger) as (cursor, dialect):
            cursor.executemany(
                dialect.sql(f"INSERT INTO {{table}} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
                            "ON CONFLICT (topic, notification_id) DO NOTHING"),
                rows,
            )
        self.ids.update(e.notification_id for e in events)

    def published(self, notification_ids: Iterable[int]) -> None:
        """These were accepted by Kafka after all: no longer parked."""
        done = sorted(self.ids.intersection(notification_ids))
        if not done:
            return
        with _writing(self.ledger) as (cursor, dialect):
            cursor.executemany(
                dialect.sql("DELETE FROM {table} WHERE topic = ? AND notification_id = ?"),
                [(self.topic, i) for i in done],
            )
        self.ids.difference_update(done)

    def _create(self) -> None:
        if self._created:
            return
        with prepared(self.ledger.settings.store_url), _writing(self.ledger) as (cursor, dialect):
            cursor.execute(dialect.sql(
                "CREATE TABLE IF NOT EXISTS {table} (topic TEXT NOT NULL, notification_id BIGINT NOT NULL, "
                "event_id TEXT, event_type TEXT, customer_id TEXT, size_bytes BIGINT NOT NULL, "
                "reason TEXT NOT NULL, parked_at TEXT NOT NULL, PRIMARY KEY (topic, notification_id))"
            ))
        self._created = True


def relay_parked(
    settings: Settings, ledger: Ledger | None = None, *, topic: str | None = None
) -> list[ParkedRelayEvent]:
    """Every event the relay of `topic` (default the ledger topic) parked, oldest first.

    Reads only, through `ledger` when given, else on a read-only connection of its own: a
    store or table that does not exist yet means nothing is parked, and nothing is created.
    """
    topic = topic or settings.kafka.ledger_topic
    with _reading(settings, ledger) as found:
        if found is None:
            return []
        cursor, dialect = found
        cursor.execute(
            dialect.sql(f"SELECT {', '.join(COLUMNS)} FROM {{table}} WHERE topic = ? ORDER BY notification_id"),
            (topic,),
        )
        rows = cursor.fetchall()
    return [_parked(tuple(row.values()) if isinstance(row, dict) else tuple(row)) for row in rows]


@dataclass(frozen=True)
class _Dialect:
    postgres: bool
    schema: str = "public"

    @property
    def table(self) -> str:
        return '"{}".{}'.format(self.schema.replace('"', '""'), TABLE) if self.postgres else TABLE

    def sql(self, statement: str) -> str:
        table = self.table
        statement = statement.replace("{table}", table)
        return statement.replace("?", "%s") if self.postgres else statement


def _dialect(ledger: Ledger) -> _Dialect:
    env = persistence_env(ledger.settings.store_url)
    if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
        return _Dialect(True, env.get("POSTGRES_SCHEMA") or "public")
    return _Dialect(False)


@contextmanager
def _writing(ledger: Ledger) -> Iterator[tuple[Any, _Dialect]]:
    try:
        with ledger.recorder.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
            yield cursor, _dialect(ledger)
    except (PersistenceError, sqlite3.Error) as exc:
        raise StoreError(f"cannot record a parked relay event in the store: {exc}") from exc


@contextmanager
def _reading(settings: Settings, ledger: Ledger | None) -> Iterator[tuple[Any, _Dialect] | None]:
    try:
        if ledger is not None:
            dialect = _dialect(ledger)
            with ledger.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
                yield (cursor, dialect) if _table_exists(cursor, dialect) else None
            return
        env = persistence_env(settings.store_url)
        if env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
            with _postgres(env, _Dialect(True, env.get("POSTGRES_SCHEMA") or "public")) as found:
                yield found
            return
        with _sqlite_read_only(Path(env["SQLITE_DBNAME"])) as found:
            yield found
    except (PersistenceError, sqlite3.Error) as exc:
        raise StoreError(f"cannot read the relay's parked events from the store: {exc}") from exc


def _table_exists(cursor: Any, dialect: _Dialect) -> bool:
    if dialect.postgres:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL AS found", (dialect.table,))
        row = cursor.fetchone()
        return bool(row["found"] if isinstance(row, dict) else row[0])
    cursor.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,))
    return bool(cursor.fetchone()[0])


@contextmanager
def _sqlite_read_only(path: Path) -> Iterator[tuple[Any, _Dialect] | None]:
    if not path.is_file():
        yield None
        return
    connection = sqlite3.connect(f"file:{pathname2url(str(path.absolute()))}?mode=ro", uri=True)
    try:
        cursor = connection.cursor()
        dialect = _Dialect(False)
        yield (cursor, dialect) if _table_exists(cursor, dialect) else None
    finally:
        connection.close()


@contextmanager
def _postgres(env: dict[str, str], dialect: _Dialect) -> Iterator[tuple[Any, _Dialect] | None]:
    import psycopg

    with connect(env) as connection:
        try:
            cursor = connection.cursor()
            yield (cursor, dialect) if _table_exists(cursor, dialect) else None
        except psycopg.Error as exc:
            raise StoreError(f"cannot read the relay's parked events from the store: {exc}") from exc


def _stored(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _parked(row: tuple) -> ParkedRelayEvent:
    values = dict(zip(COLUMNS, row, strict=True))
    values["parked_at"] = datetime.fromisoformat(values["parked_at"]).astimezone(UTC)
    return ParkedRelayEvent(**values)
