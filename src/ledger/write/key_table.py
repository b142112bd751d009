"""The store's key table: one wrapped data key per customer (see ledger.write.keys).

Rows are written in the transaction that saves a customer's first sealed fact, and deleted in
the one that records their CustomerErased, through the recorders' ``keys=`` and ``erased=``
arguments, so no fact is ever saved under a key the store does not keep, and no erasure
commits without its key gone. SQLite deletes with ``secure_delete`` (the freed bytes are
zeroed) and checkpoints its write-ahead log afterwards, so no page of the file keeps the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.write.keys import KeyRow

_CHUNK = 16_000


def insert_as_arrays(cursor: Any, table: str, rows: Sequence[Sequence[Any]], types: Sequence[str]) -> None:
    """PostgreSQL: insert `rows` as one statement of one array per column (of these `types`),
    not a statement per row: in a pipeline, executemany sent and dumped each row on its own
    (3x slower for a batch's index of event ids)."""
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    cursor.execute(f"INSERT INTO {table} SELECT * FROM unnest({arrays})",
                   [list(column) for column in zip(*rows, strict=True)])


class SQLiteKeyTable:
    """Key-table statements for the SQLite recorder (mixed into it)."""

    datastore: Any
    keys_table: str

    def create_key_table(self, c: Any) -> None:
        c.execute(f"CREATE TABLE IF NOT EXISTS {self.keys_table} (customer_id TEXT PRIMARY KEY, "
                  "master TEXT NOT NULL, wrapped BLOB NOT NULL) WITHOUT ROWID")

    def write_keys(self, c: Any, keys: Sequence[KeyRow], erased: Sequence[str]) -> None:
        if keys:
            c.executemany(f"INSERT INTO {self.keys_table} VALUES (?, ?, ?)", list(keys))
        if erased:
            c.execute("PRAGMA secure_delete = ON")
            c.executemany(f"DELETE FROM {self.keys_table} WHERE customer_id = ?", [[e] for e in erased])

    def select_keys(self, customer_ids: Sequence[str]) -> list[KeyRow]:
        found: list[KeyRow] = []
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(customer_ids), _CHUNK):
                chunk = list(customer_ids[start : start + _CHUNK])
                c.execute(f"SELECT customer_id, master, wrapped FROM {self.keys_table} "
                          f"WHERE customer_id IN ({', '.join('?' * len(chunk))})", chunk)
                found.extend((r[0], r[1], bytes(r[2])) for r in c.fetchall())
        return found

    def add_key(self, row: KeyRow) -> KeyRow:
        """Keep `row` unless the customer has a key already; the key the table keeps."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(f"INSERT OR IGNORE INTO {self.keys_table} VALUES (?, ?, ?)", list(row))
        return self.select_keys([row[0]])[0]

    def a_master(self) -> str | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT master FROM {self.keys_table} LIMIT 1")
            row = c.fetchone()
        return row[0] if row else None

    def rewrap(self, change: Any) -> int:
        """Replace every row by ``change(row)`` in one transaction; the number of rows."""
        with self.datastore.transaction(commit=True) as c:
            c.execute("PRAGMA secure_delete = ON")
            c.execute(f"SELECT customer_id, master, wrapped FROM {self.keys_table}")
            rows = [change((r[0], r[1], bytes(r[2]))) for r in c.fetchall()]
            c.executemany(f"UPDATE {self.keys_table} SET master = ?, wrapped = ? WHERE customer_id = ?",
                          [(m, w, cid) for cid, m, w in rows])
        self.shred_freed()
        return len(rows)

    def shred_freed(self) -> None:
        """Write the log back into the file and empty it: no old page of a deleted key stays."""
        with self.datastore.get_connection(commit=True) as connection:
            connection.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")


class PostgresKeyTable:
    """Key-table statements for the PostgreSQL recorder (mixed into it)."""

    datastore: Any
    keys_table: str

    def create_key_table(self, curs: Any) -> None:
        curs.execute(f"CREATE TABLE IF NOT EXISTS {self.keys_table} (customer_id TEXT PRIMARY KEY, "
                     "master TEXT NOT NULL, wrapped BYTEA NOT NULL)")

    def write_keys(self, curs: Any, keys: Sequence[KeyRow], erased: Sequence[str]) -> None:
        with curs.connection.cursor() as own:  # `curs` holds the new notification ids, read next
            if keys:
                insert_as_arrays(own, self.keys_table, keys, ("text", "text", "bytea"))
            if erased:
                own.execute(f"DELETE FROM {self.keys_table} WHERE customer_id = ANY(%s)", [list(erased)])

    def select_keys(self, customer_ids: Sequence[str]) -> list[KeyRow]:
        if not customer_ids:
            return []
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT customer_id, master, wrapped FROM {self.keys_table} WHERE customer_id = ANY(%s)",
                         [list(customer_ids)])
            return [(r["customer_id"], r["master"], bytes(r["wrapped"])) for r in curs.fetchall()]

    def add_key(self, row: KeyRow) -> KeyRow:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(f"INSERT INTO {self.keys_table} VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", list(row))
        return self.select_keys([row[0]])[0]

    def a_master(self) -> str | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(f"SELECT master FROM {self.keys_table} LIMIT 1")
            row = curs.fetchone()
        return row["master"] if row else None

    def rewrap(self, change: Any) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(f"SELECT customer_id, master, wrapped FROM {self.keys_table} FOR UPDATE")
            rows = [change((r["customer_id"], r["master"], bytes(r["wrapped"]))) for r in curs.fetchall()]
            with curs.connection.cursor() as own:
                own.executemany(f"UPDATE {self.keys_table} SET master = %s, wrapped = %s WHERE customer_id = %s",
                                [(m, w, cid) for cid, m, w in rows])
        self.shred_freed()
        return len(rows)

    def shred_freed(self) -> None:
        """VACUUM the key table, so deleted rows' space is reclaimed rather than left dead."""
        with self.datastore.get_connection() as connection:
            connection.autocommit = True
            try:
                connection.execute(f"VACUUM {self.keys_table}")
            finally:
                connection.autocommit = False
