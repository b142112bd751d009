"""Event store adapter: eventsourcing's recorders behind the ledger's Avro mapper.

Facts are stored as their Avro single-object bytes under a stable topic
(``ledger.events.<Type>``), never a Python import path, so the store's notification log can
be published to Kafka byte for byte and decoded by any reader of the contract.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from eventsourcing.persistence import Mapper, StoredEvent

from ledger.contract.codec import Codec
from ledger.errors import SettingsError, StoreError, WriterBusyError
from ledger.write.domain import Recorded
from ledger.write.locks import exclusive_once, holder_note, waiting

TOPIC_PREFIX = "ledger.events."


def fact_topic(event_type: str) -> str:
    return TOPIC_PREFIX + event_type


class LedgerMapper(Mapper[Any]):
    """Stores facts as Avro; anything else (snapshots) goes through the JSON transcoder."""

    def __init__(self, transcoder: Any, codec: Codec):
        super().__init__(transcoder=transcoder)
        self.codec = codec

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        if isinstance(domain_event, Recorded):
            return StoredEvent(
                originator_id=domain_event.originator_id,
                originator_version=domain_event.originator_version,
                topic=fact_topic(domain_event.event_type),
                state=domain_event.data,
            )
        return super().to_stored_event(domain_event)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        if stored_event.topic.startswith(TOPIC_PREFIX):
            event_type, record = self.codec.decode(stored_event.state)
            return Recorded(
                originator_id=stored_event.originator_id,  # type: ignore[arg-type]
                originator_version=stored_event.originator_version,
                event_type=event_type,
                record=record,
                data=stored_event.state,
            )
        return super().to_domain_event(stored_event)


SQLITE_LOCK_TIMEOUT_S = 60
"""How long a SQLite writer waits for another's transaction before giving up."""


def persistence_env(store_url: str) -> dict[str, str]:
    """eventsourcing settings for a store URL (``sqlite:///PATH`` or ``postgresql://...``).

    A ``?schema=NAME`` query on a PostgreSQL URL keeps the tables in that schema.
    """
    if store_url.startswith("sqlite:///"):
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": store_url[10:],
            "PROCESS_RECORDER_TOPIC": "ledger.write.recorders:SQLiteLedgerRecorder",
            # Wait this long for another writer's transaction, instead of "database is locked".
            "SQLITE_LOCK_TIMEOUT": str(SQLITE_LOCK_TIMEOUT_S),
        }
    parts = urlparse(store_url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise SettingsError(f"store must be sqlite:///PATH or postgresql://..., got {store_url!r}")
    if not parts.path.strip("/"):
        raise SettingsError(f"store URL {store_url!r} names no database")
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "PROCESS_RECORDER_TOPIC": "ledger.write.recorders:PostgresLedgerRecorder",
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",  # that insert path would skip the index of event ids
    }
    schema = parse_qs(parts.query).get("schema")
    if schema:
        env["POSTGRES_SCHEMA"] = schema[0]
    return env


SCHEMA_LOCK_TIMEOUT_S = 60
"""How long a writer waits for another one that is creating the store's tables."""


@contextmanager
def prepared(store_url: str, *, creates: bool = True) -> Iterator[None]:
    """Hold the store's schema lock while eventsourcing creates (or finds) its tables.

    On PostgreSQL, writers starting at once on a fresh schema (the parts of `ledger serve`,
    two intake processes) would otherwise race in CREATE TABLE IF NOT EXISTS, and the loser
    fails ("tuple concurrently updated", a duplicate key in pg_type). A session advisory lock
    per schema makes them take turns; the first creates, the others find. The schema named in
    the URL is created here too (eventsourcing creates tables only). SQLite has the same race
    (both create the tracking table, the second fails recording its migration): a lock file
    beside the store makes them take turns. A reader that `creates` nothing takes no lock.
    """
    env = persistence_env(store_url)
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        if not creates:
            yield
            return
        with waiting(Path(env["SQLITE_DBNAME"] + ".open.lock")):
            yield
        return
    import psycopg
    from psycopg import sql

    schema = env.get("POSTGRES_SCHEMA")
    connection = connect(env)
    with connection:
        try:
            connection.execute(f"SET lock_timeout = '{SCHEMA_LOCK_TIMEOUT_S}s'")
            connection.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"ledger-schema:{schema or 'public'}"])
        except psycopg.errors.LockNotAvailable as exc:
            raise StoreError(
                f"another process has held the lock on the store's schema {schema or 'public'!r} for "
                f"{SCHEMA_LOCK_TIMEOUT_S} s while opening it; is one stuck?"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"cannot prepare schema {schema!r} in the store: {exc}") from exc
        try:
            if schema:
                connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        except psycopg.Error as exc:
            raise StoreError(f"cannot prepare schema {schema!r} in the store: {exc}") from exc
        yield  # closing the connection releases the lock, whatever happened


@contextmanager
def store_lock(store_url: str, name: str, what: str) -> Iterator[None]:
    """Hold a lock called `name` in the event store at `store_url` for the block.

    Not re-entrant, on either backend: a second holder is refused even in the same process.
    """
    env = persistence_env(store_url)
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        with exclusive_once(Path(env["SQLITE_DBNAME"] + f".{_file_safe(name)}.lock"), what):
            yield
        return
    import psycopg

    connection = connect(env, application_name=holder_note())
    with connection:
        key = f"ledger:{env.get('POSTGRES_SCHEMA', 'public')}:{name}"
        try:
            (got,) = connection.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key]).fetchone() or (False,)
            holder = None if got else connection.execute(_HOLDER_OF_ADVISORY_LOCK, [key, key]).fetchone()
        except psycopg.Error as exc:
            raise StoreError(f"cannot take the lock {name!r} in the store: {exc}") from exc
        if not got:
            who = f"({holder[0]})" if holder and holder[0] else "(another session)"
            raise WriterBusyError(f"{what} is held by another process {who}, PostgreSQL advisory lock {key!r}; "
                                  "wait for it to finish or stop it first")
        yield  # closing the connection releases the lock


_HOLDER_OF_ADVISORY_LOCK = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = ((hashtext(%s)::bigint >> 32) & 4294967295)
  AND l.objid::bigint = (hashtext(%s)::bigint & 4294967295)
LIMIT 1
"""
"""Who holds a session advisory lock on a text key: the application_name its holder gave
(a bigint key from hashtext is split into classid, the high 32 bits, and objid, the low)."""


WRITE_TURN_TIMEOUT_S = 120
"""How long a writer waits for its turn to decide and save a batch before giving up."""


class WriteTurns:
    """Writers to one store take turns to decide and save a batch.

    Deciding reads what is recorded (a customer's version, erased or not, the index of event
    ids) and saving writes on top of it. Two writers doing that at once for the same
    customers made one of them lose every race while the other went on committing (two
    ingests of overlapping files: the loser gave up after its retries). With turns, a batch
    decided in its turn is saved without a race; a stale cached customer costs one more
    decision, still in the same turn. A turn is an ``flock`` on a file beside a SQLite store
    (which writes one transaction at a time anyway), or a PostgreSQL session advisory lock on
    a connection of its own; both end with their holder, even by kill -9, and a writer waits
    for one at most `WRITE_TURN_TIMEOUT_S`.
    """

    def __init__(self, store_url: str):
        self._env = persistence_env(store_url)
        self._connection: Any = None
        self._guard = threading.Lock()

    @contextmanager
    def turn(self) -> Iterator[None]:
        if self._env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
            with waiting(Path(self._env["SQLITE_DBNAME"] + ".write.lock"), timeout_s=WRITE_TURN_TIMEOUT_S):
                yield
            return
        with self._guard:  # one connection, one session lock: threads of a process queue here
            key = f"ledger:{self._env.get('POSTGRES_SCHEMA', 'public')}:write-turn"
            self._lock(key)
            try:
                yield
            finally:
                self._unlock(key)

    def _lock(self, key: str) -> None:
        import psycopg

        for attempt in (1, 2):  # a connection lost since the last turn is made again once
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = connect(self._env)
                    self._connection.execute(f"SET lock_timeout = '{WRITE_TURN_TIMEOUT_S}s'")
                self._connection.execute("SELECT pg_advisory_lock(hashtext(%s))", [key])
                return
            except psycopg.errors.LockNotAvailable as exc:
                raise StoreError(
                    f"another writer has held its turn on the store for {WRITE_TURN_TIMEOUT_S} s; is one stuck?"
                ) from exc
            except psycopg.OperationalError as exc:
                self.close()
                if attempt == 2:
                    raise StoreError(f"cannot take a turn to write to the store: {exc}") from exc

    def _unlock(self, key: str) -> None:
        import psycopg

        try:
            self._connection.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])
        except psycopg.Error:
            self.close()  # a lost session has lost its lock too

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


def connect(env: dict[str, str], application_name: str = "ledger") -> Any:
    """An autocommit connection to the PostgreSQL store of `env` (`persistence_env`), or a
    StoreError saying why there is none."""
    import psycopg

    try:
        return psycopg.connect(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None, autocommit=True,
            connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]), application_name=application_name[:63],
            # A lock held by a host that vanished (not a process killed: that closes the socket)
            # is freed within a minute or so, not after the kernel's two hours.
            keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to the store: {exc}") from exc


def _file_safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
