"""Customers' data keys for those who read facts: projectors, `ledger audit`, dead letters.

A reader of its own on the store's key table (read-only on SQLite), asked once per batch for
the customers in it, and keeping nothing between batches: a key deleted by an erasure is not
served from a cache afterwards.

A customer without a row was erased: their personal fields read null. A store that is not
there at all is a mistake in the settings (a Kafka projector not given the ledger's store), and
is said: otherwise every personal column would quietly read null.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ledger.errors import StoreError
from ledger.settings import Settings
from ledger.write.keys import Keyring, KeyRow, master_keys
from ledger.write.store import connect, persistence_env

KEYS_TABLE = "stored_keys"
"""The key table's name in an embedded store; eventsourcing names PostgreSQL tables after the
application (`PG_KEYS_TABLE`)."""
PG_KEYS_TABLE = "ledger_keys"
_CHUNK = 16_000


class KeyReader:
    """``reader(customer_ids)``: the data keys of those of them who have one."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._env = persistence_env(settings.store_url)
        self._keyring: Keyring | None = None
        self._connection: Any = None

    def __call__(self, customer_ids: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(customer_ids))
        rows = self._rows(wanted) if wanted else []
        if not rows:
            return {}
        if self._keyring is None:
            self._keyring = Keyring(master_keys(self.settings, create=False))
        return {row[0]: self._keyring.unwrap(row) for row in rows}

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _rows(self, wanted: list[str]) -> list[KeyRow]:
        if self._env["PERSISTENCE_MODULE"] == "eventsourcing.postgres":
            return self._postgres_rows(wanted)
        path = Path(self._env["SQLITE_DBNAME"])
        if not path.exists():
            raise StoreError(self._missing(f"there is no store at {path}"))
        found: list[KeyRow] = []
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                found.extend((r[0], r[1], bytes(r[2])) for r in connection.execute(
                    f"SELECT customer_id, master, wrapped FROM {KEYS_TABLE} "
                    f"WHERE customer_id IN ({', '.join('?' * len(chunk))})", chunk))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise StoreError(self._missing(f"the store at {path} keeps no customer keys")) from None
            raise StoreError(f"cannot read customer keys from {self.settings.store_shown}: {exc}") from exc
        finally:
            connection.close()
        return found

    def _missing(self, what: str) -> str:
        return (f"facts with sealed personal fields came in, and {what}: give this process the ledger's store "
                "(--store or LEDGER_STORE) and master key (LEDGER_MASTER_KEY_FILE or LEDGER_MASTER_KEY)")

    def _postgres_rows(self, wanted: list[str]) -> list[KeyRow]:
        import psycopg

        if self._connection is None or self._connection.closed:
            self._connection = connect(self._env, application_name="ledger-keys")
        schema = self._env.get("POSTGRES_SCHEMA", "public")
        try:
            rows = self._connection.execute(
                f'SELECT customer_id, master, wrapped FROM "{schema}"."{PG_KEYS_TABLE}" WHERE customer_id = ANY(%s)',
                [wanted]).fetchall()
        except psycopg.errors.UndefinedTable:
            self.close()
            raise StoreError(self._missing(f"{self.settings.store_shown} keeps no customer keys")) from None
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"cannot read customer keys from {self.settings.store_shown}: {exc}") from exc
        return [(r[0], r[1], bytes(r[2])) for r in rows]
